"""Shared benchmark plumbing: results, reporting, a broker to run against, topics."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
import os
import platform
import resource
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

RESULTS_DIR = Path(__file__).resolve().parent / "results"
KAFKA_URL_ENV = "MERCATO_KAFKA_URL"
LIVE_SECONDS = 30.0


class BenchError(RuntimeError):
    """A benchmark could not produce a trustworthy figure; the message says why."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class BenchResult:
    """One measured run of one workload."""

    name: str
    events: int
    seconds: float
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    peak_rss_mb: float | None = None
    # CPU time the process doing the work spent in the measured window (user + system).
    cpu_seconds: float | None = None

    @property
    def rate(self) -> float:
        """Events per second over the measured window."""
        return self.events / self.seconds if self.seconds > 0 else math.inf

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, with the derived rate included."""
        return {**dataclasses.asdict(self), "rate": self.rate}


def percentiles_ms(latencies_ns: Sequence[int]) -> tuple[float, float, float]:
    """p50/p95/p99 in milliseconds by nearest rank (no interpolation, no numpy)."""
    if not latencies_ns:
        raise BenchError("no latency samples were recorded")
    ordered = sorted(latencies_ns)

    def rank(q: float) -> float:
        index = max(0, math.ceil(q * len(ordered)) - 1)
        return ordered[index] / 1e6

    return rank(0.50), rank(0.95), rank(0.99)


def self_peak_rss_mb() -> float:
    """Peak resident set size of this process (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pid_peak_rss_mb(pid: int) -> float | None:
    """Peak RSS (VmHWM) of a live process; read it before stopping the process."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def pid_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a live process (all its threads) has used so far.

    CPU per unit of work is what carries over to another machine: throughput on a shared
    2-core box moves with whatever else runs, the CPU a process spends per order much less.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the command name, which is in parentheses and may contain spaces.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


class CpuMeter:
    """CPU seconds each named process spent between ``start()`` and ``stop()`` (``/proc``)."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self._pids = dict(pids)
        self._started: dict[str, float] = {}
        self.spent: dict[str, float] = {}

    def start(self) -> None:
        """Read every process's CPU time now."""
        self._started = {name: pid_cpu_seconds(pid) or 0.0 for name, pid in self._pids.items()}

    def stop(self) -> dict[str, float]:
        """CPU seconds per process since ``start()`` (a process gone meanwhile: BenchError)."""
        for name, pid in self._pids.items():
            now = pid_cpu_seconds(pid)
            if now is None:
                raise BenchError(f"{name} (pid {pid}) exited during the measured window")
            self.spent[name] = now - self._started[name]
        return self.spent


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(results: Sequence[BenchResult]) -> None:
    """Print one aligned row per result."""
    header = f"{'benchmark':<14}{'events':>8}{'seconds':>9}{'events/s':>11}"
    header += f"{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'RSS MB':>8}"
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.name:<14}{r.events:>8}{r.seconds:>9.2f}{r.rate:>11.0f}"
            f"{_fmt(r.p50_ms, '.1f'):>9}{_fmt(r.p95_ms, '.1f'):>9}"
            f"{_fmt(r.p99_ms, '.1f'):>9}{_fmt(r.peak_rss_mb, '.0f'):>8}"
        )


def ratio_line(numerator: BenchResult, denominator: BenchResult) -> str:
    """``ratio a/b = X.XX`` on throughput; the figure later benchmarks quote."""
    return f"ratio {numerator.name}/{denominator.name} = {numerator.rate / denominator.rate:.2f}"


def machine_note() -> str:
    """Cores and memory of this machine, for the record next to every figure."""
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return f"{os.cpu_count()} cores / {pages / 2**30:.0f} GiB, Python {platform.python_version()}"


def write_json(name: str, payload: Mapping[str, Any]) -> Path:
    """Write ``bench/results/<name>.json`` (git-ignored) and return its path."""
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return path


def bootstrap_of(kafka_url: str) -> str:
    """``kafka://host:port[;...]`` (Faust's form) to aiokafka's ``host:port[,...]``."""
    hosts = kafka_url.removeprefix("kafka://").rstrip("/")
    return ",".join(h.strip() for h in hosts.replace(";", ",").split(",") if h.strip())


@contextmanager
def kafka_url(explicit: str | None = None) -> Iterator[str]:
    """Yield a ``kafka://`` URL: the given or env one, else an embedded broker on a temp dir."""
    url = explicit or os.environ.get(KAFKA_URL_ENV)
    if url:
        yield url
        return
    # Imported here so that running against an existing broker does not need the embedded extra.
    from mercato.embedded import EmbeddedStack, Service

    only: tuple[Service, ...] = ("kafka",)
    with (
        tempfile.TemporaryDirectory(prefix="mercato-bench-broker-") as data_dir,
        EmbeddedStack(Path(data_dir), broker="noida", services=only) as endpoints,
    ):
        yield endpoints.kafka_url


async def create_topics(bootstrap: str, partitions: Mapping[str, int]) -> None:
    """Create fresh topics with explicit partition counts (Faust never creates source topics)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="mercato-bench-admin")
    await admin.start()
    try:
        response = await admin.create_topics(
            [NewTopic(name, count, 1) for name, count in partitions.items()]
        )
        failed = [(t, code, msg) for t, code, msg in response.topic_errors if code != 0]
        if failed:
            # Topic names carry a per-run id, so "already exists" is a failure here too.
            raise BenchError(f"creating bench topics failed: {failed}")
    finally:
        await admin.close()


def pid_rss_mb(pid: int) -> float | None:
    """Resident memory of a live process now (``VmRSS``), in MB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


@contextlib.asynccontextmanager
async def server_process(
    argv: list[str], env: Mapping[str, str], base: str, log: Path,
    *, probe: str = "/v1/users/me",
) -> AsyncIterator[int]:
    """A server process, live (``probe`` answers < 500) before yielding its pid.

    Stopped with SIGTERM afterwards, SIGKILL if it has not exited 15 s later.
    """
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *argv, env=dict(env), stdout=out, stderr=asyncio.subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + LIVE_SECONDS
            async with aiohttp.ClientSession() as session:
                while True:
                    if proc.returncode is not None:
                        raise BenchError(f"{argv} exited early; see {log}")
                    with contextlib.suppress(aiohttp.ClientError):
                        async with session.get(base + probe) as response:
                            if response.status < 500:
                                break
                    if time.monotonic() > deadline:
                        raise BenchError(f"{argv} did not answer in {LIVE_SECONDS}s; see {log}")
                    await asyncio.sleep(0.1)
            yield proc.pid
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 15)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
