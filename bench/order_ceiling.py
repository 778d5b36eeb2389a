"""The rules of ``bench.orders --find-ceiling``: which rates to offer, when a step passes, the line.

A step passes when its saga p95 is under ``P95_LIMIT_MS`` and at least
``MIN_COMPLETED`` of the orders it offered completed. Completion is counted,
not taken as a rate over the window: a short step's window includes the last
orders' own latency, which would fail a 5-second step at any rate. A pipeline
that does not keep up fails on p95 anyway, since its backlog grows for the
whole step. The search stops at the first failing step: rates above it only
add to the backlog on a shared machine.
"""

from __future__ import annotations

import dataclasses

RATES = (40.0, 60.0, 80.0, 100.0, 125.0, 150.0, 200.0, 250.0, 300.0, 400.0, 500.0)
P95_LIMIT_MS = 250.0
MIN_COMPLETED = 0.98


@dataclasses.dataclass(frozen=True, slots=True)
class Step:
    """One offered rate and what it achieved (``failure`` when the step did not finish)."""

    rate: float
    offered: int
    completed: int
    completed_rate: float
    p95_ms: float | None
    failure: str | None = None

    @property
    def passed(self) -> bool:
        """Whether this rate still meets the target."""
        return (self.failure is None and self.p95_ms is not None
                and self.p95_ms < P95_LIMIT_MS and self.completed >= MIN_COMPLETED * self.offered)

    def describe(self) -> str:
        """The step in a few words, for the per-step line and the final one."""
        if self.failure is not None:
            return f"{self.rate:.1f}/s failed: {self.failure}"
        return (f"{self.rate:.1f}/s completed {self.completed}/{self.offered} "
                f"({self.completed_rate:.1f}/s) p95 {self.p95_ms or 0.0:.1f} ms")


def rates(max_rate: float) -> list[float]:
    """The offered rates to step through, up to ``max_rate`` (which ends the list)."""
    steps = [rate for rate in RATES if rate < max_rate]
    return [*steps, max_rate]


def ceiling_line(steps: list[Step]) -> str:
    """The search's last line (its form is fixed: scripts and docs parse it).

    ``orders ceiling: R/s at saga p95 < 250 ms; above: <the first failing step>``,
    R being 0.0 when even the first step failed, and ``above: not reached (max M/s)``
    when every step passed.
    """
    passed = [step for step in steps if step.passed]
    failed = next((step for step in steps if not step.passed), None)
    best = max((step.rate for step in passed), default=0.0)
    above = f"not reached (max {steps[-1].rate:.1f}/s)" if failed is None else failed.describe()
    return f"orders ceiling: {best:.1f}/s at saga p95 < {P95_LIMIT_MS:.0f} ms; above: {above}"
