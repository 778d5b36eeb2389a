"""Soak: a steady mixed load for minutes, and whether any process's memory keeps growing.

    python -m bench.soak [--minutes 5] [--warmup 60] [--rate 20] [--buyers 100]
                         [--products 8] [--sample 10] [--timeout SECONDS]

Loopback only: an embedded stack (broker, MongoDB-protocol server, Redis), a
``mercato worker`` and a ``mercato gateway`` process (``bench.order_stack``), seeded
buyers and products (``bench.orders``). For ``--minutes`` it offers ``--rate``
requests/s, open loop, in the mix of ``bench.soak_load.WEIGHTS``: product lists and
details, ``/v1/users/me``, orders (one in four declined by the card), 4 KB uploads and
batches of 10 client analytics events; WebSocket clients follow every buyer's
``user:{id}`` channel and time each order from its ``order.placed`` push to its
``completed`` push.

Every ``--sample`` seconds the RSS of worker, gateway, broker, MongoDB server and Redis
is read from ``/proc`` (with its anonymous part, where a leak shows); after ``--warmup``
seconds the growth per minute is fitted (least squares) per process. Throughput,
p50/p95/p99 and errors per kind, and CPU per process, cover the window after the
warm-up; 5xx are counted over the whole run.
Targets (issue #14): no process grows more than 5 MB/min after warm-up, zero 5xx. The
last line is the summary, in this fixed form (on one line):

    soak: M min R req/s, worst p99 P ms (kind), errors E%, 5xx N;
    worst growth PROC +G MB/min (target 5): met | MISSED: <what>

``--timeout`` bounds the whole run (default: the load plus 4 minutes for start-up, the
drain and teardown); the stack and its temp dir are removed on failure and Ctrl-C too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import BenchError, CpuMeter, machine_note, percentiles_ms, write_json
from bench.files import gateway_ready, uploads_warm_up
from bench.order_stack import START_SECONDS, Running, running_stack
from bench.orders import CHANNELS_PER_SOCKET, Watch, World, build_world
from bench.soak_load import MixedLoad
from bench.soak_stats import after_warmup, growth_mb_per_minute, missed, summary_line
from mercato.embedded import EmbeddedStack

REQUEST_TIMEOUT = 30.0
DRAIN_SECONDS = 60.0  # for the last orders' pushes after the load stops
SETUP_SECONDS = 240.0  # start-up, seeding, the drain and teardown, on a loaded box


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0, help="how long to offer load")
    parser.add_argument("--warmup", type=float, default=60.0,
                        help="seconds at the start left out of the figures and the fit")
    parser.add_argument("--rate", type=float, default=20.0, help="offered requests per second")
    parser.add_argument("--buyers", type=int, default=100, help="distinct buyers")
    parser.add_argument("--products", type=int, default=8, help="distinct products")
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between RSS reads")
    parser.add_argument("--timeout", type=float, default=None,
                        help="hard limit for the whole run (default: load + 240 s)")
    return parser


def pid_memory_mb(pid: int) -> tuple[float, float] | None:
    """Resident set size (VmRSS) of a live process and its anonymous part, in MB.

    The anonymous part (heap, stacks) is where a leak shows; the rest is mapped files
    (shared libraries, a server's mmapped data files) that the kernel may drop again.
    """
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    try:
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["RssAnon"].split()[0]) / 1024
    except (KeyError, ValueError):
        return None


class RssSamples:
    """RSS (and its anonymous part) of named processes at seconds since the load started."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._pids = pids
        self._started = time.perf_counter()
        self.samples: dict[str, list[tuple[float, float]]] = {name: [] for name in pids}
        self.anon: dict[str, list[tuple[float, float]]] = {name: [] for name in pids}

    def take(self) -> None:
        """One sample of every process now; a process gone is an error."""
        at = time.perf_counter() - self._started
        for name, pid in self._pids.items():
            memory = pid_memory_mb(pid)
            if memory is None:
                raise BenchError(f"{name} (pid {pid}) exited during the soak")
            self.samples[name].append((at, memory[0]))
            self.anon[name].append((at, memory[1]))

    async def run(self, every: float) -> None:
        """Sample every ``every`` seconds until cancelled."""
        while True:
            self.take()
            await asyncio.sleep(every)


async def _follow(session: aiohttp.ClientSession, base: str, world: World, watch: Watch
                  ) -> list[asyncio.Task[None]]:
    """WebSocket clients on every buyer's channel, each confirmed before the load starts."""
    url = base.replace("http://", "ws://") + "/v1/ws"
    buyers = list(world.tokens)
    tasks = []
    for start in range(0, len(buyers), CHANNELS_PER_SOCKET):
        ready = asyncio.Event()
        channels = [f"user:{b}" for b in buyers[start:start + CHANNELS_PER_SOCKET]]
        tasks.append(asyncio.create_task(watch.follow(session, url, world.admin, channels,
                                                      ready)))
        await asyncio.wait_for(ready.wait(), 30)
    return tasks


def _pushes(watch: Watch, orders: dict[str, bool]) -> dict[str, Any]:
    """How the accepted orders ended on the push channels (warm-up included)."""
    ended = {o: "completed" for o in watch.completed} | watch.other_ends
    wrong = sum(1 for o, declined in orders.items()
                if o in ended and (ended[o] == "completed") == declined)
    saga = [watch.completed[o] - watch.placed[o] for o in watch.completed if o in watch.placed]
    p50, p95, p99 = percentiles_ms(saga) if saga else (None, None, None)
    return {"accepted": len(orders), "ended": sum(1 for o in orders if o in ended),
            "unended": sum(1 for o in orders if o not in ended), "wrong_end": wrong,
            "saga_p50_ms": p50, "saga_p95_ms": p95, "saga_p99_ms": p99}


async def _soak(stack: Running, services: dict[str, int], args: argparse.Namespace,
                world: World) -> dict[str, Any]:
    pids = {"worker": stack.worker_pid, "gateway": stack.gateway_pid,
            "broker": services["kafka"], "mongo": services["mongo"], "redis": services["redis"]}
    seconds = args.minutes * 60
    watch = Watch()
    # The followers get a session of their own: a total timeout is per request, and their
    # WebSocket lives as long as the run.
    async with (aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as streams,
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT))
                as session):
        # Ready, and the files agent confirming uploads, before the clock starts: a 503
        # while the worker is still taking its partitions is start-up, not the soak.
        await gateway_ready(session, stack.base, START_SECONDS)
        await uploads_warm_up(session, stack.base, next(iter(world.tokens.values())), START_SECONDS)
        followers = await _follow(streams, stack.base, world, watch)
        rss = RssSamples(pids)
        sampler = asyncio.create_task(rss.run(args.sample))
        try:
            load = MixedLoad(session, stack.base, world)
            cpu = CpuMeter(pids)
            await load.offer(args.rate, seconds, args.warmup, measuring=cpu.start)
            if sampler.done():
                sampler.result()  # raises what stopped it: a process exited
            spent = cpu.stop()
            rss.take()
            watch.expect(len(load.orders))
            # Orders still open after the drain are reported as unended: a figure, not a failure.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(watch.all_ended.wait(), DRAIN_SECONDS)
        finally:
            for task in (sampler, *followers):
                task.cancel()
            await asyncio.gather(sampler, *followers, return_exceptions=True)
    window = seconds - args.warmup
    growth = {name: growth_mb_per_minute(after_warmup(s, args.warmup))
              for name, s in rss.samples.items()}
    processes = {name: {"rss_mb": samples, "growth_mb_per_minute": growth[name],
                        "anon_mb": rss.anon[name], "anon_growth_mb_per_minute":
                        growth_mb_per_minute(after_warmup(rss.anon[name], args.warmup)),
                        "cpu_seconds": spent[name], "cpu_percent": 100 * spent[name] / window}
                 for name, samples in rss.samples.items()}
    return {"kinds": [s.summary(window) for s in load.windows.measured.values()],
            "warmup_kinds": [s.summary(args.warmup) for s in load.windows.warmup.values()],
            "server_errors": load.windows.server_errors(), "push": _pushes(watch, load.orders),
            "processes": processes, "growth": growth, "measured_seconds": window}


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _print(measured: dict[str, Any], warmup: float) -> None:
    print(f"{'kind':<10}{'count':>7}{'req/s':>8}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}"
          f"{'errors':>8}{'5xx':>5}")
    for k in measured["kinds"]:
        print(f"{k['kind']:<10}{k['count']:>7}{k['rate']:>8.1f}{_fmt(k['p50_ms']):>8}"
              f"{_fmt(k['p95_ms']):>8}{_fmt(k['p99_ms']):>8}{k['errors']:>8}"
              f"{k['server_errors']:>5}")
        if k["errors"]:
            bad = {s: n for s, n in k["statuses"].items() if s != str(k["expected"])}
            print(f"  {k['kind']} answers: {bad}")
    push = measured["push"]
    print(f"pushes: {push['ended']} of {push['accepted']} accepted orders ended on their "
          f"channel, {push['unended']} did not, {push['wrong_end']} ended wrongly; "
          f"placed -> completed p50/p95/p99 {_fmt(push['saga_p50_ms'])}/"
          f"{_fmt(push['saga_p95_ms'])}/{_fmt(push['saga_p99_ms'])} ms")
    print(f"{'process':<10}{'RSS at warm-up MB':>19}{'RSS end MB':>12}{'MB/min':>9}"
          f"{'anon MB/min':>13}{'CPU s':>8}{'CPU %':>7}")
    for name, p in measured["processes"].items():
        warm = after_warmup(p["rss_mb"], warmup)
        print(f"{name:<10}{warm[0][1]:>19.0f}{warm[-1][1]:>12.0f}"
              f"{p['growth_mb_per_minute']:>+9.2f}{p['anon_growth_mb_per_minute']:>+13.2f}"
              f"{p['cpu_seconds']:>8.1f}{p['cpu_percent']:>7.1f}")


async def _run(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    load = os.getloadavg()[0]
    async with asyncio.timeout(args.timeout):
        services = EmbeddedStack(scratch / "stack", startup_timeout=60.0)
        with services as endpoints:
            async with running_stack(endpoints, scratch) as stack:
                world = await build_world(stack, argparse.Namespace(buyers=args.buyers,
                                                               products=args.products))
                measured = await _soak(stack, services.pids, args, world)
    _print(measured, args.warmup)
    pushes = measured["push"]
    failures = missed(measured["growth"], measured["server_errors"])
    if pushes["unended"] or pushes["wrong_end"]:
        failures.append("orders not ended as paid for")
    return {
        "summary": summary_line(args.minutes, measured["kinds"], measured["growth"],
                                measured["server_errors"]),
        "missed": failures, "date": datetime.date.today().isoformat(),
        "machine": machine_note(), "load_average_1m_at_start": load,
        "load_average_1m_at_end": os.getloadavg()[0],
        "command": " ".join(["python -m bench.soak", *sys.argv[1:]]), "params": vars(args),
        **measured,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the soak; exit 1 with the reason when it cannot produce figures."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.minutes <= 0 or args.sample <= 0:
        parser.error("--rate, --minutes and --sample must be positive")
    if args.minutes * 60 - args.warmup < 2 * args.sample:
        parser.error("the load must outlast --warmup by two --sample intervals at least "
                     "(the growth fit needs two samples)")
    if args.timeout is None:
        args.timeout = args.minutes * 60 + SETUP_SECONDS
    with tempfile.TemporaryDirectory(prefix="mercato-bench-soak-") as scratch:
        try:
            report = asyncio.run(_run(args, Path(scratch)))
        except BenchError as exc:
            print(f"soak benchmark failed: {exc}", file=sys.stderr)
            return 1
        except TimeoutError:
            print(f"soak benchmark failed: not done within --timeout {args.timeout:.0f}s",
                  file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("soak benchmark interrupted; the stack was stopped", file=sys.stderr)
            return 130
    print(f"machine: {report['machine']}, 1-min load average at start "
          f"{report['load_average_1m_at_start']:.2f}, at end "
          f"{report['load_average_1m_at_end']:.2f}")
    if report["missed"]:
        print("missed: " + "; ".join(report["missed"]))
    print(f"results: {write_json('soak', report)}")
    print(report["summary"])  # last, always: see the module docstring
    return 0


if __name__ == "__main__":
    sys.exit(main())
