"""The analytics agents' events/s beside the naive Faust agent, and the dashboard push latency.

    python -m bench.analytics [--events 10000] [--orders 20] [--sessions 500] [--products 8]
                              [--timeout 120] [--profile DIR]

Starts an embedded stack (broker, MongoDB-protocol server, Redis), ``mercato worker`` and
``mercato gateway`` processes, seeds a seller, a buyer and products, then:

1. **Throughput.** ``--events`` ``product.viewed`` events (``--sessions`` sessions, the
   seeded products) are produced straight onto ``analytics`` in the envelope the gateway
   publishes (``gateway/analytics/event_routes.py``; the gateway is left out so that the
   agents alone are measured, as the naive agent is fed by a plain producer too). Each
   yields two facts (the marketplace and the seller), published a batch at a time as one
   ``analytics.facts`` record per scope. Rate = first send -> the last fact
   applied by the ``analytics`` agent (``bench.analytics_offsets`` says how that moment is
   found exactly). The worker's CPU (``/proc``) over the same window, per event. The
   dashboard must then count exactly ``--events`` views for the marketplace and the seller.
2. **Push latency.** One WebSocket client (admin) on ``dashboard``; ``--orders`` client
   events, then ``--orders`` orders, one at a time (``bench.analytics_push``): from the
   ``202`` to the first ``analytics.snapshot`` frame counting it.
3. **Naive.** The naive agent of ``bench.baseline`` counts ``--events`` events on the same
   broker once the worker and gateway are stopped; ``ratio analytics/naive``. Then the
   same agent without its table (``faust-floor``: it counts in memory), which is what
   Faust itself costs per record read: no Faust agent reading its records one by one
   gets past it.

The last line is the summary, in this fixed form (its push figures are the client
events'; the orders' are printed above it, with the broker's CPU per event and what the
worker wrote per event):

    analytics: events E/s naive N/s ratio R; cpu/event worker W ms naive V ms;
    push p50 A ms p95 B ms

(on one line).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import random
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka import AIOKafkaProducer

from bench import analytics_push as push
from bench.analytics_offsets import GroupOffsets, changelog_topic
from bench.common import (
    BenchError,
    BenchResult,
    machine_note,
    percentiles_ms,
    pid_cpu_seconds,
    pid_peak_rss_mb,
    print_table,
    ratio_line,
    write_json,
)
from bench.naive import run_naive
from bench.order_stack import Running, running_stack, seed_users
from bench.orders import create_products
from config import Settings
from gateway.identity.auth import TokenService
from mercato.embedded import EmbeddedStack
from streams.envelope import new_event, utcnow
from streams.events.analytics import FACTS, ProductViewed

SELLER = "bench-seller"
BUYER = "bench-buyer"
BATCH = 100  # events per gateway request, whose request id they share as correlation id
SOURCES = ("analytics",)
CPU_SAMPLE = 0.1
DASHBOARD_POLL = 0.2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.analytics", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000, help="client events (and naive)")
    parser.add_argument("--orders", type=int, default=20,
                        help="push-latency samples: this many events, then this many orders")
    parser.add_argument("--sessions", type=int, default=500, help="distinct client sessions")
    parser.add_argument("--products", type=int, default=8, help="distinct products")
    parser.add_argument("--timeout", type=float, default=120.0, help="hard limit per phase")
    parser.add_argument("--profile", type=Path, default=None,
                        help="write py-spy raw stacks of the worker during the burst here "
                             "(needs py-spy on PATH; it costs the worker a little)")
    return parser


@contextlib.asynccontextmanager
async def _profiled(into: Path | None, pid: int) -> AsyncIterator[None]:
    """py-spy sampling ``pid`` until the block ends (stopped with SIGINT, which writes)."""
    if into is None:
        yield
        return
    await asyncio.to_thread(into.mkdir, parents=True, exist_ok=True)
    spy = await asyncio.create_subprocess_exec(
        "py-spy", "record", "--pid", str(pid), "--rate", "250", "--format", "raw",
        "--output", str(into / "worker.txt"), "--nonblocking",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        yield
    finally:
        if spy.returncode is None:
            spy.send_signal(signal.SIGINT)
        await asyncio.wait_for(spy.wait(), 30)


def _envelopes(count: int, sessions: int, products: list[str]) -> list[tuple[bytes, bytes, Any]]:
    """(key, value, headers) of ``count`` views, built as the gateway's route builds them."""
    out = []
    correlation = uuid.uuid4().hex
    for seq in range(count):
        if seq % BATCH == 0:
            correlation = uuid.uuid4().hex
        session = f"bench-session-{seq % sessions}"
        product = products[seq % len(products)]
        payload = ProductViewed.model_validate({
            "sessionId": session, "userId": None, "properties": {"productId": product},
            "productId": product, "sellerId": SELLER})
        envelope = new_event(payload, key=session, source="gateway/bench",
                             correlation_id=correlation, occurred_at=utcnow())
        out.append((envelope.key.encode(), envelope.encode(), envelope.headers()))
    return out


async def _produce(settings: Settings, records: list[tuple[bytes, bytes, Any]]) -> int:
    """Send every record (acks=all, like the gateway's producer); the first send's time_ns."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all",
                                linger_ms=5, enable_idempotence=False)
    await producer.start()
    try:
        topic = settings.topic("analytics")
        started = time.time_ns()
        acks = [await producer.send(topic, key=k, value=v, headers=h) for k, v, h in records]
        await asyncio.gather(*acks)
        return started
    finally:
        await producer.stop()


class CpuSamples:
    """CPU seconds of named processes sampled every ``CPU_SAMPLE`` s (from ``/proc``).

    Sampled rather than read at both ends (``CpuMeter``) because the end of the window is
    known only afterwards, from the changelog: the window runs from the last sample before
    the first event to the first sample after the last fact applied.
    """

    def __init__(self, pids: dict[str, int]) -> None:
        self._pids = pids
        self.samples: list[tuple[int, dict[str, float]]] = []

    def take(self) -> None:
        """One sample now (epoch ns); a process gone is an error."""
        now = time.time_ns()
        spent = {}
        for name, pid in self._pids.items():
            seconds = pid_cpu_seconds(pid)
            if seconds is None:
                raise BenchError(f"{name} (pid {pid}) exited during the measured window")
            spent[name] = seconds
        self.samples.append((now, spent))

    async def run(self) -> None:
        """Sample until cancelled."""
        while True:
            self.take()
            await asyncio.sleep(CPU_SAMPLE)

    def between(self, start_ns: int, end_ns: int) -> dict[str, float]:
        """CPU seconds per process from the last sample at or before ``start_ns`` to the
        first at or after ``end_ns``."""
        before = [cpu for at, cpu in self.samples if at <= start_ns]
        after = [cpu for at, cpu in self.samples if at >= end_ns]
        if not before or not after:
            raise BenchError("CPU was not sampled around the measured window")
        return {name: after[0][name] - before[-1][name] for name in self._pids}


async def _quiet(offsets: GroupOffsets, limit: float) -> None:
    """Wait for the worker to have handled every analytics record so far (setup's facts)."""
    targets = await offsets.ends([*SOURCES, FACTS])
    await offsets.caught_up(targets, limit=limit, what="before the burst")


async def _throughput(stack: Running, broker_pid: int, args: argparse.Namespace,
                      products: list[str], session: aiohttp.ClientSession, admin: str
                      ) -> tuple[BenchResult, dict[str, Any]]:
    settings = stack.settings
    records = _envelopes(args.events, args.sessions, products)
    async with GroupOffsets(settings) as offsets:
        await _quiet(offsets, args.timeout)
        changelog = await offsets.ends([changelog_topic(settings)], prefixed=False)
        facts_before = await offsets.ends([FACTS])
        cpu = CpuSamples({"worker": stack.worker_pid, "broker": broker_pid})
        cpu.take()
        sampler = asyncio.create_task(cpu.run())
        try:
            async with asyncio.timeout(args.timeout), _profiled(args.profile, stack.worker_pid):
                started = await _produce(settings, records)
                produced = time.time_ns()
                await _counted(session, stack.base, admin, args.events)
                await asyncio.sleep(2 * CPU_SAMPLE)  # samples after the end, surely
                last_ms = await offsets.last_mark_ms(changelog)
                changelog_after = await offsets.ends([changelog_topic(settings)],
                                                     prefixed=False)
                facts_after = await offsets.ends([FACTS])
        except TimeoutError:
            raise BenchError(f"the analytics agents did not apply {args.events} events in "
                             f"{args.timeout:.0f}s") from None
        finally:
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)
    if last_ms is None:
        raise BenchError("no applied-fact mark was found in the windows changelog")
    finished = last_ms * 1_000_000
    spent = cpu.between(started, finished)
    result = BenchResult(name="analytics", events=args.events, seconds=(finished - started) / 1e9,
                         peak_rss_mb=pid_peak_rss_mb(stack.worker_pid),
                         cpu_seconds=spent["worker"])
    # What the worker wrote per event (the timer's ticks add a few records a second).
    written = {"facts": sum(facts_after.values()) - sum(facts_before.values()),
               "changelog": sum(changelog_after.values()) - sum(changelog.values())}
    return result, {"produce_seconds": (produced - started) / 1e9,
                    "broker_cpu_ms_per_event": spent["broker"] * 1000 / args.events,
                    "records_per_event": {k: v / args.events for k, v in written.items()},
                    "changelog_tail": {kind: {"records": n, "mean_bytes": size / n}
                                       for kind, (n, size) in offsets.tail_sizes.items()}}


async def _counted(session: aiohttp.ClientSession, base: str, token: str, events: int) -> None:
    """Wait until the marketplace's and the seller's dashboards count exactly ``events`` views.

    Their snapshots are rebuilt once a second, so this is the moment the burst was seen to
    be applied, not when it was (the changelog says that).
    """
    headers = {"Authorization": f"Bearer {token}"}
    for query in ("", f"?sellerId={SELLER}"):
        while True:
            async with session.get(f"{base}/v1/analytics/dashboard{query}",
                                   headers=headers) as response:
                seen = push.views(await response.json())
            if seen == events:
                break
            if seen > events:
                raise BenchError(f"the dashboard{query or ' (marketplace)'} counts {seen} "
                                 f"views, {events} were sent: an event counted twice")
            await asyncio.sleep(DASHBOARD_POLL)


async def _stack_phases(stack: Running, broker_pid: int, args: argparse.Namespace
                        ) -> dict[str, Any]:
    settings, base = stack.settings, stack.base
    await seed_users(settings, [SELLER, BUYER])
    issuer = TokenService(settings)
    admin = issuer.issue_access("bench-admin", ["admin"])
    buyer = issuer.issue_access(BUYER, ["buyer"])
    seller = {"Authorization": f"Bearer {issuer.issue_access(SELLER, ['seller'])}"}
    async with aiohttp.ClientSession(headers=seller) as seller_session:
        products = await create_products(seller_session, base, args.products)
    rng = random.Random(11)
    # Subscribed before the burst: a snapshot is pushed only when it changes, so a client
    # arriving after it might wait long for its first frame.
    async with (aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session,
                push.watching(session, base, admin) as watch):
        analytics, extra = await _throughput(stack, broker_pid, args, products, session, admin)
        await asyncio.wait_for(watch.wait_for(push.at_least(push.views, args.events)),
                               args.timeout)
        event_ns = await push.event_samples(session, base, watch, product=products[0],
                                            count=args.orders, before=args.events, rng=rng)
        order_ns = await push.order_samples(session, base, watch, buyer_token=buyer,
                                            product=products[0], count=args.orders, rng=rng)
    return {"analytics": analytics, "push_event_ms": percentiles_ms(event_ns),
            "push_order_ms": percentiles_ms(order_ns), **extra}


async def _run(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    load = os.getloadavg()[0]
    services = EmbeddedStack(scratch / "stack", startup_timeout=60.0)
    with services as endpoints:
        async with running_stack(endpoints, scratch) as stack:
            measured = await _stack_phases(stack, services.pids["kafka"], args)
        naive, startup = await run_naive(
            endpoints.kafka_url, run_id=uuid.uuid4().hex[:8], datadir=scratch / "naive",
            events=args.events, partitions=4, payload=256, limit=args.timeout)
        floor, _ = await run_naive(
            endpoints.kafka_url, run_id=uuid.uuid4().hex[:8], datadir=scratch / "floor",
            events=args.events, partitions=4, payload=256, limit=args.timeout, table=False)
    analytics: BenchResult = measured["analytics"]
    print_table([analytics, naive, floor])
    print(ratio_line(floor, naive) + "  (a Faust agent that only counts in memory: the most "
          "an agent reading one record at a time reaches here)")
    ratio = ratio_line(analytics, naive)
    print(ratio)
    cpu = {r.name: (r.cpu_seconds or 0.0) * 1000 / r.events for r in (analytics, naive, floor)}
    pushes = {"event": measured["push_event_ms"], "order": measured["push_order_ms"]}
    for kind, (p50, p95, p99) in pushes.items():
        print(f"push after an accepted {kind}: {args.orders} samples, p50 {p50:.0f} ms "
              f"p95 {p95:.0f} ms p99 {p99:.0f} ms")
    written = measured["records_per_event"]
    print(f"cpu/event worker {cpu['analytics']:.2f} ms broker "
          f"{measured['broker_cpu_ms_per_event']:.2f} ms naive {cpu['naive']:.2f} ms "
          f"faust-floor {cpu['faust-floor']:.2f} ms; "
          f"records written per event: {written['facts']:.3f} fact records, "
          f"{written['changelog']:.3f} changelog")
    tail = measured["changelog_tail"]
    print("changelog tail, mean bytes per record by key kind: " + ", ".join(
        f"{kind}| {t['mean_bytes']:.0f} B x{t['records']}" for kind, t in sorted(tail.items())))
    print(f"produced in {measured['produce_seconds']:.2f} s; naive startup {startup:.2f} s")
    return {
        "summary": summary_line(analytics, naive, cpu["analytics"], cpu["naive"],
                                pushes["event"]),
        "date": datetime.date.today().isoformat(), "machine": machine_note(),
        "load_average_1m_at_start": load,
        "command": " ".join(["python -m bench.analytics", *sys.argv[1:]]),
        "params": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "results": [r.as_dict() for r in (analytics, naive, floor)],
        "ratio_analytics_over_naive": analytics.rate / naive.rate, "ratio_line": ratio,
        "cpu_ms_per_event": cpu, "naive_startup_seconds": startup,
        "push_ms": {k: dict(zip(("p50", "p95", "p99"), v, strict=True))
                    for k, v in pushes.items()},
        **{k: measured[k] for k in ("produce_seconds", "broker_cpu_ms_per_event",
                                    "records_per_event", "changelog_tail")},
    }


def summary_line(analytics: BenchResult, naive: BenchResult, worker_ms: float, naive_ms: float,
                 push_ms: tuple[float, float, float]) -> str:
    """The benchmark's last line (its form is fixed: scripts and docs parse it)."""
    return (
        f"analytics: events {analytics.rate:.0f}/s naive {naive.rate:.0f}/s "
        f"ratio {analytics.rate / naive.rate:.2f}; cpu/event worker {worker_ms:.2f} ms "
        f"naive {naive_ms:.2f} ms; push p50 {push_ms[0]:.0f} ms p95 {push_ms[1]:.0f} ms"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 1 with the reason when a figure is not trustworthy."""
    args = _parser().parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mercato-bench-analytics-") as scratch:
        try:
            report = asyncio.run(_run(args, Path(scratch)))
        except BenchError as exc:
            print(f"analytics benchmark failed: {exc}", file=sys.stderr)
            return 1
    print(f"machine: {report['machine']}, 1-min load average at start "
          f"{report['load_average_1m_at_start']:.2f}")
    print(f"results: {write_json('analytics', report)}")
    print(report["summary"])  # last, always: see the module docstring
    return 0


if __name__ == "__main__":
    sys.exit(main())
