"""Drive the naive Faust agent in a worker subprocess and time it from outside.

Completion is detected with in-band markers, not by polling the table: after
the last event the harness sends one ``end`` record to every partition of the
source topic. Kafka keeps per-partition order, so when the agent handles the
``end`` of partition p it has already applied ``table[key] += 1`` for every
event of p; it then stamps the time and reports how many events it saw. The
run ends at the latest of those stamps; a summary then checks that the table
really sums to N. Startup is measured the same way with ``ping`` records and
kept out of the rate: the first event is sent only once every partition has
answered a ping, i.e. the worker is assigned, recovered and processing.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from bench.common import (
    BenchError,
    BenchResult,
    CpuMeter,
    bootstrap_of,
    create_topics,
    pid_peak_rss_mb,
)
from bench.workload import END, PING, new_producer, produce_events, send_control
from mercato._procs import log_tail, spawn, terminate

REPO = Path(__file__).resolve().parent.parent
STOP_GRACE = 30.0
POLL = 0.02


class _Marks:
    """The worker's answers, one JSON object per line in a file it appends to."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.received: list[Any] = []
        self._offset = 0

    def _read_new(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as handle:
            handle.seek(self._offset)
            chunk = handle.read()
        # Only whole lines: the worker may be halfway through writing the last one.
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self._offset += len(complete)
        self.received.extend(orjson.loads(line) for line in complete.splitlines())

    async def collect(self, kind: str, count: int, worker: subprocess.Popen[bytes]) -> list[Any]:
        """Wait for ``count`` marks of ``kind``; fail fast if the worker dies."""
        while len(found := [m for m in self.received if m["kind"] == kind]) < count:
            if worker.poll() is not None:
                raise BenchError(f"Faust worker exited with {worker.returncode} while waiting")
            # Polling a local file costs next to nothing next to the worker being measured.
            await asyncio.sleep(POLL)
            self._read_new()
        return found

    def progress(self) -> str:
        """What the worker has answered so far, for timeout messages."""
        kinds = Counter(m["kind"] for m in self.received)
        seen = sum(m.get("seen", 0) for m in self.received)
        return f"marks so far {dict(kinds)}, events reported by end marks {seen}"


def _spawn_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start ``faust -A bench.naive_app worker``; a subprocess so Faust owns its own loop."""
    argv = [sys.executable, "-m", "faust", "-A", "bench.naive_app", "worker",
            "--without-web", "-l", "warn"]
    # The project's spawn: the worker gets SIGTERM if the harness dies without cleaning up.
    return spawn(argv, log_path, env={**os.environ, **env, "PYTHONPATH": str(REPO)}, cwd=REPO)


async def _measure(
    worker: subprocess.Popen[bytes], marks: _Marks, bootstrap: str, topic: str,
    *, events: int, partitions: int, payload: int, limit: float, spawned: float,
) -> tuple[float, int, int, dict[str, Any], float]:
    """Ping until ready, then produce and wait for every end mark and the summary.

    Also returns the worker's CPU seconds from the first event produced to the last end mark.
    """
    producer = new_producer(bootstrap)
    await producer.start()
    try:
        await send_control(producer, topic, PING, partitions)
        await producer.flush()
        try:
            async with asyncio.timeout(limit):
                await marks.collect("pong", partitions, worker)
        except TimeoutError:
            raise BenchError(
                f"Faust worker did not answer pings within {limit:.0f}s; {marks.progress()}"
            ) from None
        startup = time.monotonic() - spawned
        cpu = CpuMeter({"naive": worker.pid})
        try:
            async with asyncio.timeout(limit):
                cpu.start()
                started = await produce_events(
                    producer, topic, events, payload, end_partitions=partitions
                )
                ends = await marks.collect(END, partitions, worker)
                cpu_seconds = cpu.stop()["naive"]
                (summary,) = await marks.collect("summary", 1, worker)
        except TimeoutError:
            raise BenchError(
                f"naive agent did not count {events} events in {limit:.0f}s; {marks.progress()}"
            ) from None
    finally:
        await producer.stop()
    seen = sum(mark["seen"] for mark in ends)
    finished = max(mark["ts"] for mark in ends)
    if seen != events or summary["table_total"] != events:
        # More than sent means re-delivery: the worker missed heartbeats, lost its partitions
        # and re-read uncommitted events (the naive agent is not idempotent). No fair figure.
        raise BenchError(
            f"naive agent saw {seen} events and its table sums to {summary['table_total']}, "
            f"expected {events}; look for a rebalance in the worker log below"
        )
    return startup, started, finished, summary, cpu_seconds


async def run_naive(
    kafka_url: str, *, run_id: str, datadir: Path, events: int, partitions: int,
    payload: int, limit: float, table: bool = True,
) -> tuple[BenchResult, float]:
    """Run the naive agent over ``events``; return its result and the worker startup seconds.

    ``table=False``: the Faust floor (``bench.naive_app``), reported as ``faust-floor``.
    """
    bootstrap = bootstrap_of(kafka_url)
    topic = f"bench.naive.{run_id}.events"
    await create_topics(bootstrap, {topic: partitions})
    marks = _Marks(datadir / "marks.jsonl")
    env = {
        "BENCH_APP_ID": f"mercato-bench-naive-{run_id}", "BENCH_KAFKA_URL": kafka_url,
        "BENCH_DATADIR": str(datadir / "faust"), "BENCH_SOURCE": topic,
        "BENCH_MARKS": str(marks.path), "BENCH_PARTITIONS": str(partitions),
        "BENCH_TABLE": "1" if table else "0",
    }
    log_path = datadir / "worker.log"
    spawned = time.monotonic()
    worker = _spawn_worker(env, log_path)
    try:
        startup, started, finished, summary, cpu_seconds = await _measure(
            worker, marks, bootstrap, topic, events=events, partitions=partitions,
            payload=payload, limit=limit, spawned=spawned,
        )
        rss = pid_peak_rss_mb(worker.pid)
    except BenchError as exc:
        tail = log_tail(log_path) or "(worker log is empty)"
        raise BenchError(f"{exc}\n--- worker log tail ---\n{tail}") from None
    finally:
        # In a thread so the loop stays free while the worker shuts down.
        await asyncio.to_thread(terminate, worker, STOP_GRACE)
    result = BenchResult(
        name="naive" if table else "faust-floor", events=events, seconds=(finished - started) / 1e9,
        p50_ms=summary["p50_ms"], p95_ms=summary["p95_ms"], p99_ms=summary["p99_ms"],
        peak_rss_mb=rss, cpu_seconds=cpu_seconds,
    )
    return result, startup
