"""The soak benchmark's arithmetic: what each kind of request got, memory growth, its last line.

Pure functions and records only, so that the figures the soak reports are unit-tested
(``tests/unit/test_bench_soak.py``) without a stack.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from bench.common import BenchError, percentiles_ms

# Issue #14's targets: after warm-up no process grows faster than this, and no 5xx at all.
TARGET_MB_PER_MINUTE = 5.0
NO_ANSWER = "no answer"  # a connection error or the client's own timeout


@dataclasses.dataclass(slots=True)
class KindStats:
    """What one kind of request (or push) got: answers by status, latencies of the good ones."""

    kind: str
    expected: int
    statuses: Counter[str] = dataclasses.field(default_factory=Counter)
    latencies_ns: list[int] = dataclasses.field(default_factory=list)

    def record(self, status: int | None, latency_ns: int) -> None:
        """One answer (``None``: none came); only expected answers are timed."""
        self.statuses[NO_ANSWER if status is None else str(status)] += 1
        if status == self.expected:
            self.latencies_ns.append(latency_ns)

    def fail(self, reason: str, count: int = 1) -> None:
        """Count failures that are not an HTTP answer (an order that never ended)."""
        self.statuses[reason] += count

    @property
    def count(self) -> int:
        """Everything recorded, good or bad."""
        return sum(self.statuses.values())

    @property
    def errors(self) -> int:
        """Anything but the expected status."""
        return self.count - self.statuses[str(self.expected)]

    @property
    def server_errors(self) -> int:
        """Answers in the 5xx range."""
        return sum(n for status, n in self.statuses.items()
                   if status.isdigit() and status.startswith("5"))

    def summary(self, seconds: float) -> dict[str, Any]:
        """JSON-ready figures over a window of ``seconds``."""
        p50 = p95 = p99 = None
        if self.latencies_ns:
            p50, p95, p99 = percentiles_ms(self.latencies_ns)
        return {"kind": self.kind, "expected": self.expected, "count": self.count,
                "rate": self.count / seconds, "errors": self.errors,
                "server_errors": self.server_errors, "statuses": dict(self.statuses),
                "p50_ms": p50, "p95_ms": p95, "p99_ms": p99}


def mix(weights: Mapping[str, int]) -> list[str]:
    """One cycle of kinds, each ``weight`` times, spread evenly (smooth weighted round robin).

    Spread rather than grouped so that every second of a steady rate carries every kind.
    """
    if not weights or any(w <= 0 for w in weights.values()):
        raise BenchError(f"every kind needs a positive weight: {dict(weights)}")
    total = sum(weights.values())
    current = dict.fromkeys(weights, 0)
    cycle = []
    for _ in range(total):
        for kind, weight in weights.items():
            current[kind] += weight
        chosen = max(current, key=lambda k: current[k])  # first of equals: stable order
        current[chosen] -= total
        cycle.append(chosen)
    return cycle


def growth_mb_per_minute(samples: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) samples, in MB per minute.

    A fit, not last minus first: one garbage collection or arena release at either end
    would otherwise decide the figure.
    """
    if len({t for t, _ in samples}) < 2:
        raise BenchError(f"memory growth needs samples at two times at least, got {len(samples)}")
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_m = sum(m for _, m in samples) / n
    covariance = sum((t - mean_t) * (m - mean_m) for t, m in samples)
    variance = sum((t - mean_t) ** 2 for t, _ in samples)
    return covariance / variance * 60.0


def after_warmup(samples: Sequence[tuple[float, float]], warmup: float
                 ) -> list[tuple[float, float]]:
    """The samples taken at or after ``warmup`` seconds into the load."""
    return [(t, mb) for t, mb in samples if t >= warmup]


def missed(growth: Mapping[str, float], server_errors: int) -> list[str]:
    """What missed issue #14's targets, in a fixed order (empty: every target met)."""
    found = [f"{server_errors} 5xx"] if server_errors else []
    found += [f"{name} grows {rate:.2f} MB/min" for name, rate in growth.items()
              if rate > TARGET_MB_PER_MINUTE]
    return found


def summary_line(minutes: float, kinds: Sequence[Mapping[str, Any]],
                 growth: Mapping[str, float], server_errors: int) -> str:
    """The benchmark's last line (its form is fixed: scripts and docs parse it).

    ``kinds`` are ``KindStats.summary()`` dicts of the requests (not the pushes);
    ``server_errors`` counts the whole run, warm-up included.
    """
    count = sum(k["count"] for k in kinds)
    errors = sum(k["errors"] for k in kinds)
    rate = sum(k["rate"] for k in kinds)
    timed = [k for k in kinds if k["p99_ms"] is not None]
    if not timed or not growth:
        raise BenchError("no request was answered as expected, or no process was sampled")
    slowest = max(timed, key=lambda k: k["p99_ms"])
    grower = max(growth, key=lambda name: growth[name])
    failures = missed(growth, server_errors)
    verdict = "MISSED: " + ", ".join(failures) if failures else "met"
    return (
        f"soak: {minutes:.1f} min {rate:.1f} req/s, worst p99 {slowest['p99_ms']:.0f} ms "
        f"({slowest['kind']}), errors {100 * errors / max(count, 1):.2f}%, "
        f"5xx {server_errors}; worst growth {grower} {growth[grower]:+.2f} MB/min "
        f"(target {TARGET_MB_PER_MINUTE:.0f}): {verdict}"
    )
