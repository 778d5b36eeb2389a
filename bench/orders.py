"""Order saga under a steady offered load, beside the naive Faust agent on the same broker.

    python -m bench.orders [--rate 100] [--seconds 20] [--buyers 100] [--products 8]
                           [--naive-events 20000] [--timeout 180]
    python -m bench.orders --find-ceiling [--seconds 10] [--max-rate 500]

Starts an embedded stack (broker, MongoDB-protocol server, Redis), ``mercato worker``
and ``mercato gateway`` processes, seeds accounts and products, then offers
``--rate`` orders/s over REST for ``--seconds`` (open loop, bounded in-flight).
WebSocket clients subscribed to every buyer's ``user:{id}`` channel time each
order from its ``order.placed`` push to its ``completed`` push. The pipeline's
internal events are the records the worker's agents consumed in that window
(end-offset growth of their source topics). Then the naive agent of
``bench.baseline`` counts ``--naive-events`` on the same broker, and
``ratio orders/naive`` compares events/s.

CPU is read from ``/proc`` for every process around the measured window (first order
offered to last order ended): worker, broker, MongoDB server, gateway and Redis, each per
completed order, and the naive agent's per event in its own window. Throughput on a
shared machine moves with whatever else runs; CPU per unit of work much less, so it is
the figure to compare across machines. The last line is the summary, in this fixed form:

    orders: offered R/s completed C/s p95 P ms; cpu/order worker W ms broker B ms mongo M ms
    gateway G ms total T ms; naive N ms/event

(on one line; ``total`` includes Redis, which the line before it shows).

``--find-ceiling`` offers the rates of ``bench.order_ceiling`` in turn, ``--seconds``
each, on one stack (seeded once, no naive agent), until a step misses saga p95 < 250 ms
or completes fewer than 98% of its orders, and ends with that module's line:

    orders ceiling: R/s at saga p95 < 250 ms; above: <the first failing step>
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.common import (
    BenchError,
    BenchResult,
    CpuMeter,
    machine_note,
    percentiles_ms,
    pid_peak_rss_mb,
    print_table,
    ratio_line,
    write_json,
)
from bench.naive import run_naive
from bench.order_ceiling import Step, ceiling_line, rates
from bench.order_stack import Running, running_stack, seed_users
from config import Settings
from gateway.identity.auth import TokenService
from mercato.embedded import EmbeddedStack
from streams.topics import worker_sources

SELLER = "bench-seller"
MAX_IN_FLIGHT = 256
CHANNELS_PER_SOCKET = 50


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.orders", description=__doc__)
    parser.add_argument("--rate", type=float, default=100.0, help="offered orders per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to offer load")
    parser.add_argument("--buyers", type=int, default=100, help="distinct buyers")
    parser.add_argument("--products", type=int, default=8, help="distinct products")
    parser.add_argument("--naive-events", type=int, default=20_000, help="naive agent events")
    parser.add_argument("--timeout", type=float, default=180.0, help="hard limit per phase")
    parser.add_argument("--find-ceiling", action="store_true",
                        help="step the offered rate up to --max-rate; report the highest "
                             "that meets saga p95 < 250 ms")
    parser.add_argument("--max-rate", type=float, default=500.0,
                        help="with --find-ceiling: the last rate to try")
    return parser


async def _end_offsets(settings: Settings) -> int:
    """Records now on the worker's source topics (all partitions)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        await consumer.topics()
        parts = [TopicPartition(settings.topic(t), p) for t in worker_sources()
                 for p in consumer.partitions_for_topic(settings.topic(t)) or ()]
        return sum((await consumer.end_offsets(parts)).values())
    finally:
        await consumer.stop()


async def create_products(session: aiohttp.ClientSession, base: str, count: int) -> list[str]:
    """Products with ample stock, created through the API once the worker answers."""
    ids = []
    for i in range(count):
        body = {"name": f"Bench item {i}", "category": "bench", "price": "5.00",
                "currency": "USD", "stock": 1_000_000}
        for _ in range(60):
            async with session.post(base + "/v1/products", json=body) as response:
                if response.status == 201:
                    ids.append((await response.json())["productId"])
                    break
                if response.status != 503:
                    text = await response.text()
                    raise BenchError(f"creating a product: {response.status} {text}")
        else:
            raise BenchError("the worker never answered product creation")
    for pid in ids:  # reserving needs the inventory to hold the initial stock
        while True:
            async with session.get(f"{base}/v1/products/{pid}") as response:
                if response.status == 200 and (await response.json())["stock"] > 0:
                    break
            await asyncio.sleep(0.2)
    return ids


class Watch:
    """WebSocket subscribers timing placed -> completed per order."""

    def __init__(self) -> None:
        self.placed: dict[str, int] = {}
        self.completed: dict[str, int] = {}
        self.other_ends: dict[str, str] = {}
        self.all_ended = asyncio.Event()
        self._expected: int | None = None

    def expect(self, count: int) -> None:
        """Set ``all_ended`` once ``count`` orders have ended."""
        self._expected = count
        self._check()

    def _check(self) -> None:
        ended = len(self.completed) + len(self.other_ends)
        if self._expected is not None and ended >= self._expected:
            self.all_ended.set()

    async def follow(self, session: aiohttp.ClientSession, url: str, token: str,
                     channels: list[str], ready: asyncio.Event) -> None:
        async with session.ws_connect(url, headers={"Authorization": f"Bearer {token}"}) as ws:
            for channel in channels:
                await ws.send_json({"type": "subscribe", "channel": channel})
            subscribed = 0
            async for message in ws:
                frame = message.json()
                now = time.perf_counter_ns()
                if frame["type"] == "subscribed":
                    subscribed += 1
                    if subscribed == len(channels):
                        ready.set()
                if frame["type"] != "event":
                    continue
                event = frame["event"]
                order_id = event["data"].get("orderId", "")
                if event["type"] == "order.placed":
                    self.placed.setdefault(order_id, now)
                elif event["type"] == "order.status_changed":
                    status = event["data"]["status"]
                    if status == "completed":
                        self.completed.setdefault(order_id, now)
                    elif status in ("rejected", "payment_failed", "cancelled"):
                        self.other_ends[order_id] = status
                    self._check()


async def _offer(session: aiohttp.ClientSession, base: str, tokens: list[str],
                 products: list[str], rate: float, seconds: float) -> tuple[list[str], list[int]]:
    """Open-loop POSTs at ``rate``; the accepted order ids and each request's latency."""
    accepted: list[str] = []
    latencies: list[int] = []
    slots = asyncio.Semaphore(MAX_IN_FLIGHT)
    total = int(rate * seconds)
    rng = random.Random(7)

    async def one() -> None:
        async with slots:
            headers = {"Authorization": f"Bearer {rng.choice(tokens)}",
                       "Idempotency-Key": uuid.uuid4().hex}
            body = {"items": [{"productId": rng.choice(products), "quantity": 1}],
                    "paymentMethod": "tok_visa"}
            sent = time.perf_counter_ns()
            async with session.post(base + "/v1/orders", json=body, headers=headers) as response:
                if response.status == 202:
                    accepted.append((await response.json())["orderId"])
                    latencies.append(time.perf_counter_ns() - sent)

    started = time.perf_counter()
    tasks = []
    for i in range(total):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    return accepted, latencies


# The processes whose CPU an order costs, as the summary line names them.
PROCESSES = ("worker", "broker", "mongo", "gateway", "redis")


@dataclasses.dataclass(frozen=True, slots=True)
class World:
    """Seeded once per stack: the buyers with their tokens, the products, a watcher's token."""

    tokens: dict[str, str]
    products: list[str]
    admin: str


async def build_world(stack: Running, args: argparse.Namespace) -> World:
    settings = stack.settings
    buyers = [f"bench-buyer-{i}" for i in range(args.buyers)]
    await seed_users(settings, [*buyers, SELLER])
    issuer = TokenService(settings)
    seller = {"Authorization": f"Bearer {issuer.issue_access(SELLER, ['seller'])}"}
    async with aiohttp.ClientSession(headers=seller) as seller_session:
        products = await create_products(seller_session, stack.base, args.products)
    # One client follows many buyers' channels, so it needs the admin's view.
    return World(tokens={b: issuer.issue_access(b, ["buyer"]) for b in buyers},
                 products=products, admin=issuer.issue_access("bench-admin", ["admin"]))


async def _orders_phase(
    stack: Running, services: dict[str, int], args: argparse.Namespace, world: World
) -> dict[str, Any]:
    settings, base = stack.settings, stack.base
    buyers, tokens, products, admin = list(world.tokens), world.tokens, world.products, world.admin
    watch = Watch()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        ws_url = base.replace("http://", "ws://") + "/v1/ws"
        followers = []
        for start in range(0, len(buyers), CHANNELS_PER_SOCKET):
            group = buyers[start:start + CHANNELS_PER_SOCKET]
            ready = asyncio.Event()
            followers.append(asyncio.create_task(watch.follow(
                session, ws_url, admin, [f"user:{b}" for b in group], ready)))
            await asyncio.wait_for(ready.wait(), 30)
        try:
            events_before = await _end_offsets(settings)
            cpu = CpuMeter({"worker": stack.worker_pid, "broker": services["kafka"],
                            "mongo": services["mongo"], "gateway": stack.gateway_pid,
                            "redis": services["redis"]})
            cpu.start()
            started = time.perf_counter_ns()
            try:
                async with asyncio.timeout(args.timeout):
                    accepted, post_latencies = await _offer(
                        session, base, list(tokens.values()), products, args.rate, args.seconds)
                    watch.expect(len(accepted))
                    await watch.all_ended.wait()
            except TimeoutError:
                raise BenchError(f"only {len(watch.completed)} orders completed within "
                                 f"{args.timeout:.0f}s") from None
            spent = cpu.stop()
            finished = max(watch.completed.values(), default=started)
            events = await _end_offsets(settings) - events_before
            rss = pid_peak_rss_mb(stack.worker_pid)
        finally:
            # Also when the phase fails: no follower outlives it.
            for task in followers:
                task.cancel()
            await asyncio.gather(*followers, return_exceptions=True)
    saga = [watch.completed[o] - watch.placed[o] for o in watch.completed if o in watch.placed]
    p50, p95, p99 = percentiles_ms(saga)
    window = (finished - started) / 1e9
    orders = BenchResult(name="orders", events=len(watch.completed), seconds=window,
                         p50_ms=p50, p95_ms=p95, p99_ms=p99, peak_rss_mb=rss)
    pipeline = BenchResult(name="pipeline", events=events, seconds=window)
    post = percentiles_ms(post_latencies)
    completed = max(len(watch.completed), 1)
    return {"orders": orders, "pipeline": pipeline, "accepted": len(accepted),
            "cpu_ms_per_order": {n: spent[n] * 1000 / completed for n in PROCESSES},
            "worker_cpu_ms_per_record": spent["worker"] * 1000 / max(events, 1),
            "offered": int(args.rate * args.seconds), "failed_ends": len(watch.other_ends),
            "post_p50_ms": post[0], "post_p95_ms": post[1], "post_p99_ms": post[2]}


async def _run(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    load = os.getloadavg()[0]
    services = EmbeddedStack(scratch / "stack", startup_timeout=60.0)
    with services as endpoints:
        async with running_stack(endpoints, scratch) as stack:
            measured = await _orders_phase(
                stack, services.pids, args, await build_world(stack, args))
        naive, _ = await run_naive(
            endpoints.kafka_url, run_id=uuid.uuid4().hex[:8], datadir=scratch / "naive",
            events=args.naive_events, partitions=4, payload=256, limit=args.timeout)
    orders, pipeline = measured["orders"], measured["pipeline"]
    print_table([orders, pipeline, naive])
    ratio = ratio_line(pipeline, naive)
    print(ratio)
    print(f"offered {measured['offered']} accepted {measured['accepted']} completed "
          f"{orders.events} other ends {measured['failed_ends']}; POST p50/p95/p99 "
          f"{measured['post_p50_ms']:.0f}/{measured['post_p95_ms']:.0f}/"
          f"{measured['post_p99_ms']:.0f} ms")
    per_order = measured["cpu_ms_per_order"]
    naive_ms = (naive.cpu_seconds or 0.0) * 1000 / naive.events
    print("cpu/order " + " ".join(f"{n} {per_order[n]:.1f} ms" for n in PROCESSES))
    per_record = measured["worker_cpu_ms_per_record"]
    # The issue's yardstick: the worker's CPU per pipeline record against the naive agent's
    # per event (one RocksDB increment and its changelog record), same broker, same run.
    print(f"worker cpu/record {per_record:.2f} ms, naive {naive_ms:.2f} ms/event: "
          f"ratio worker/naive = {per_record / naive_ms if naive_ms else 0.0:.2f}")
    return {
        "summary": summary_line(args.rate, orders, per_order, naive_ms),
        "naive_cpu_ms_per_event": naive_ms,
        "date": datetime.date.today().isoformat(), "machine": machine_note(),
        "load_average_1m_at_start": load,
        "command": " ".join(["python -m bench.orders", *sys.argv[1:]]),
        "params": vars(args), "results": [r.as_dict() for r in (orders, pipeline, naive)],
        "ratio_pipeline_over_naive": pipeline.rate / naive.rate, "ratio_line": ratio,
        **{k: v for k, v in measured.items() if k not in ("orders", "pipeline")},
    }


async def _find_ceiling(args: argparse.Namespace, scratch: Path) -> list[Step]:
    """Each rate in turn on one stack, stopping at the first that misses the target."""
    steps: list[Step] = []
    services = EmbeddedStack(scratch / "stack", startup_timeout=60.0)
    with services as endpoints:
        async with running_stack(endpoints, scratch) as stack:
            world = await build_world(stack, args)
            for rate in rates(args.max_rate):
                # A step whose orders have not all ended well after its offer has failed
                # already; waiting out a saturated backlog would only delay the answer.
                step_args = argparse.Namespace(**{**vars(args), "rate": rate,
                                                  "timeout": min(args.timeout, args.seconds + 15)})
                offered = int(rate * args.seconds)
                try:
                    measured = await _orders_phase(stack, services.pids, step_args, world)
                except BenchError as exc:
                    steps.append(Step(rate, offered, 0, 0.0, None, failure=str(exc)))
                else:
                    orders: BenchResult = measured["orders"]
                    steps.append(Step(rate, offered, orders.events, orders.rate, orders.p95_ms))
                    per_order = measured["cpu_ms_per_order"]
                    print(f"step {steps[-1].describe()}; cpu/order "
                          + " ".join(f"{n} {per_order[n]:.1f} ms" for n in PROCESSES))
                if not steps[-1].passed:
                    break
    return steps


def summary_line(
    rate: float, orders: BenchResult, per_order: dict[str, float], naive_ms: float
) -> str:
    """The benchmark's last line (its form is fixed: scripts and docs parse it)."""
    total = sum(per_order.values())
    return (
        f"orders: offered {rate:.1f}/s completed {orders.rate:.1f}/s "
        f"p95 {orders.p95_ms or 0.0:.1f} ms; cpu/order worker {per_order['worker']:.1f} ms "
        f"broker {per_order['broker']:.1f} ms mongo {per_order['mongo']:.1f} ms "
        f"gateway {per_order['gateway']:.1f} ms total {total:.1f} ms; "
        f"naive {naive_ms:.1f} ms/event"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 1 with the reason when a figure is not trustworthy."""
    args = _parser().parse_args(argv)
    if args.find_ceiling:
        return _ceiling_main(args)
    with tempfile.TemporaryDirectory(prefix="mercato-bench-orders-") as scratch:
        try:
            report = asyncio.run(_run(args, Path(scratch)))
        except BenchError as exc:
            print(f"orders benchmark failed: {exc}", file=sys.stderr)
            return 1
    print(f"machine: {report['machine']}, 1-min load average at start "
          f"{report['load_average_1m_at_start']:.2f}")
    print(f"results: {write_json('orders', report)}")
    print(report["summary"])  # last, always: see the module docstring
    return 0


def _ceiling_main(args: argparse.Namespace) -> int:
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="mercato-bench-ceiling-") as scratch:
        try:
            steps = asyncio.run(_find_ceiling(args, Path(scratch)))
        except BenchError as exc:
            print(f"orders ceiling search failed: {exc}", file=sys.stderr)
            return 1
    line = ceiling_line(steps)
    report = {"summary": line, "steps": [dataclasses.asdict(step) for step in steps],
              "date": datetime.date.today().isoformat(), "machine": machine_note(),
              "load_average_1m_at_start": load, "params": vars(args),
              "command": " ".join(["python -m bench.orders", *sys.argv[1:]])}
    print(f"machine: {report['machine']}, 1-min load average at start {load:.2f}")
    print(f"results: {write_json('orders_ceiling', report)}")
    print(line)  # last, always: see the module docstring
    return 0


if __name__ == "__main__":
    sys.exit(main())
