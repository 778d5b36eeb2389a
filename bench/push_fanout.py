"""Push fan-out at scale: one gateway, 10,000 connections, events through the ``push`` topic.

    python -m bench.push_fanout [--connections 10000] [--channels 1000] [--rate 2000]
        [--seconds 20] [--warmup 5] [--transport ws|sse] [--stalled 0] [--churn 0]
        [--no-gc-freeze]

Two servers, the same clients, the same frames, in one run:

* ``bare``: ``bench.bare_push``, an aiohttp loop that generates the events itself and
  writes each one to its subscribers with ``send_str`` (no Kafka, no auth, no replay);
* ``gateway``: ``mercato gateway`` on the embedded stack; this process publishes the
  events to the real ``push`` topic, keyed by channel, as the agents do.

``--connections`` clients (``bench.push_clients``, a separate process of raw sockets)
each follow one of ``--channels`` ``product:`` channels; ``--rate`` events a second are
spread round-robin over the channels. Reported per server: deliveries/s, delivery
latency p50/p99 (publish -> received, wall clock), memory per connection (RSS growth
from opening the connections / their number), the server's CPU per 1,000 deliveries
(``/proc``), and deliveries per second of server CPU: the ratio gateway/bare of that last
figure is the one that carries over to another machine. ``--stalled K`` makes K clients
stop reading: they must be closed with 1013 and nobody else may be.

The gateway's full garbage collections (``gateway.runtime.gc_policy``, read from its
``/metrics``) are reported with its figures: how many ran over the whole run, their
seconds, and the longest (as its histogram bucket). ``--churn R`` then closes and reopens
every connection R times and prints the gateway's RSS after each round (frozen reference
cycles of closed connections are only freed by the policy's full collections) and the
pause of each of those collections (from its log). ``--no-gc-freeze`` runs the gateway
with ``MERCATO_GC_FREEZE=false``: CPython's own collection schedule, the figures before.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import json
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaProducer

from bench.common import (
    BenchError,
    CpuMeter,
    machine_note,
    pid_rss_mb,
    server_process,
    write_json,
)
from bench.gateway_auth import bench_settings, profiler
from bench.push_clients import raise_fd_limit
from bench.push_events import channel_name, sample_envelope
from config import Settings
from gateway.identity.auth import TokenService
from mercato._procs import free_port
from streams.admin import ensure_topics

READY_TIMEOUT = 300.0
IDLE_SECONDS = 3.0
UNLIMITED_STREAMS = "stream=1000000000/60:1000000000"
TICK = 0.005
REPLAY_COUNTERS = ("replay_requests", "replay_passes", "evicted")
GC_BUCKET = 'mercato_gc_full_pause_seconds_bucket{le="'


@dataclasses.dataclass(slots=True)
class Run:
    """One server's figures."""

    name: str
    connections: int
    published: int
    deliveries: int
    seconds: float
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    memory_kb_per_connection: float
    cpu_seconds: float
    idle_cpu_share: float
    client_cpu_share: float
    slow_closed: int
    dropped: int
    gaps: int
    duplicates: int
    storm: dict[str, Any]

    @property
    def rate(self) -> float:
        """Deliveries per second."""
        return self.deliveries / self.seconds

    @property
    def per_core(self) -> float:
        """Deliveries per second of the server's own CPU."""
        return self.deliveries / self.cpu_seconds if self.cpu_seconds > 0 else 0.0

    @property
    def cpu_ms_per_1000(self) -> float:
        """The server's CPU milliseconds per 1,000 deliveries."""
        return self.cpu_seconds / self.deliveries * 1e6 if self.deliveries else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, derived figures included."""
        return {**dataclasses.asdict(self), "rate": self.rate, "per_core": self.per_core,
                "cpu_ms_per_1000": self.cpu_ms_per_1000}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.push_fanout", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--channels", type=int, default=1_000)
    parser.add_argument("--rate", type=float, default=2_000.0, help="events per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=5.0, help="unmeasured seconds first")
    parser.add_argument("--transport", choices=("ws", "sse"), default="ws")
    parser.add_argument("--stalled", type=int, default=0, help="clients that stop reading")
    parser.add_argument("--users", type=int, default=200, help="distinct users (tokens)")
    parser.add_argument("--storm", type=int, default=0,
                        help="then drop this many WebSocket clients and bring them back at once, "
                        "each resuming from its last event id (gateway only)")
    parser.add_argument("--storm-gap", type=float, default=2.0,
                        help="seconds the storm's clients stay away")
    parser.add_argument("--churn", type=int, default=0,
                        help="then close and reopen every connection this many times, "
                        "printing the gateway's RSS after each round (gateway only)")
    parser.add_argument("--gc-collect-after-closed", type=int, default=None,
                        help="the gateway's MERCATO_GC_COLLECT_AFTER_CLOSED (default: its own)")
    parser.add_argument("--no-gc-freeze", action="store_true",
                        help="run the gateway with MERCATO_GC_FREEZE=false (the figures before)")
    parser.add_argument("--only", choices=("bare", "gateway"), default=None)
    parser.add_argument("--logs", type=Path, default=None,
                        help="keep the servers' and clients' logs in this directory")
    parser.add_argument("--profile", type=Path, default=None,
                        help="write py-spy samples of each server here (needs py-spy)")
    return parser


class Clients:
    """The ``bench.push_clients`` process, driven over its stdin and stdout."""

    def __init__(self, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.proc = proc
        self.log = log

    @classmethod
    @contextlib.asynccontextmanager
    async def opened(cls, args: argparse.Namespace, port: int, tokens: Path,
                     log: Path) -> AsyncIterator[Clients]:
        """Start the clients and wait until every one is subscribed."""
        with log.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.push_clients", "--port", str(port),
                "--transport", args.transport, "--connections", str(args.connections),
                "--channels", str(args.channels), "--tokens", str(tokens),
                "--stalled", str(args.stalled),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=err,
            )
            clients = cls(proc, log)
            try:
                line = await asyncio.wait_for(clients.line(), READY_TIMEOUT)
                if not line.startswith("ready"):
                    raise BenchError(f"the clients did not start: {line!r}; see {log}")
                yield clients
            finally:
                if proc.returncode is None:
                    with contextlib.suppress(ConnectionError):
                        await clients.say("exit")
                    try:
                        await asyncio.wait_for(proc.wait(), 30)
                    except TimeoutError:
                        proc.kill()
                        await proc.wait()

    async def line(self) -> str:
        """The next line the clients printed."""
        assert self.proc.stdout is not None
        raw = await self.proc.stdout.readline()
        if not raw:
            await self.proc.wait()
            tail = self.log.read_text(errors="replace")[-2000:]
            raise BenchError(f"the client process exited ({self.proc.returncode}):\n{tail}")
        return raw.decode().strip()

    async def say(self, command: str) -> None:
        """Send one command line."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(command.encode() + b"\n")
        await self.proc.stdin.drain()

    async def report(self) -> dict[str, Any]:
        """Stop recording and read the figures."""
        await self.say("report")
        report: dict[str, Any] = json.loads(await asyncio.wait_for(self.line(), 120))
        return report




async def _kafka_publisher(settings: Settings, args: argparse.Namespace) -> tuple[
        asyncio.Task[None], Callable[[], int], AIOKafkaProducer]:
    """Publish ``--rate`` events a second to the push topic, keyed by channel."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=2,
                                acks=1, max_batch_size=256 * 1024)
    await producer.start()
    topic = settings.topic("push")
    names = [channel_name(i) for i in range(args.channels)]
    sent = 0

    async def run() -> None:
        nonlocal sent
        began = time.perf_counter()
        while True:
            due = int((time.perf_counter() - began) * args.rate) - sent
            for _ in range(due):
                channel = names[sent % len(names)]
                value = orjson.dumps(sample_envelope(channel, time.time_ns(),
                                                     sent // len(names)))
                await producer.send(topic, value, key=channel.encode())
                sent += 1
            await asyncio.sleep(TICK)

    return asyncio.create_task(run(), name="bench-publisher"), lambda: sent, producer


async def _measure(name: str, pid: int, port: int, args: argparse.Namespace, tokens: Path,
                   scratch: Path, start: Callable[[], Awaitable[Callable[[], int]]],
                   then: Callable[[Clients], Awaitable[dict[str, Any]]] | None = None) -> Run:
    await asyncio.sleep(1.0)
    before = pid_rss_mb(pid) or 0.0
    clients_log = _logs(args, scratch) / f"{name}-clients.log"
    async with Clients.opened(args, port, tokens, clients_log) as clients:
        await asyncio.sleep(1.0)
        after = pid_rss_mb(pid) or 0.0
        # What the server spends with every connection open and nothing to deliver.
        idle = CpuMeter({name: pid})
        idle.start()
        await asyncio.sleep(IDLE_SECONDS)
        idle_share = idle.stop()[name] / IDLE_SECONDS
        published = await start()
        await asyncio.sleep(args.warmup)
        spy = await profiler(args.profile, name, pid, args.seconds)
        meter = CpuMeter({name: pid, "clients": clients.proc.pid})
        meter.start()
        first = published()
        await clients.say("measure")
        await asyncio.sleep(args.seconds)
        report = await clients.report()
        spent = meter.stop()[name]
        # A client process near a whole core would make the latencies its own.
        client_share = meter.spent["clients"] / args.seconds
        count = published() - first
        if spy is not None:
            await spy.wait()
        extra = await then(clients) if then is not None else {}
    return Run(
        name=name, connections=args.connections, published=count,
        deliveries=report["deliveries"], seconds=report["seconds"],
        p50_ms=report["p50_ms"], p99_ms=report["p99_ms"], max_ms=report["max_ms"],
        memory_kb_per_connection=(after - before) * 1024 / args.connections,
        cpu_seconds=spent, idle_cpu_share=idle_share, client_cpu_share=client_share,
        slow_closed=report["slow_closed"], dropped=report["dropped"], gaps=report["gaps"],
        duplicates=report["duplicates"], storm=extra,
    )


async def _bare(args: argparse.Namespace, env: dict[str, str], tokens: Path,
                scratch: Path) -> Run:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "bench.bare_push", "--port", str(port)]
    async with server_process(argv, env, base, _logs(args, scratch) / "bare.log") as pid:

        async def start() -> Callable[[], int]:
            began = time.perf_counter()
            async with aiohttp.ClientSession() as session, session.post(
                f"{base}/start", params={"rate": str(args.rate), "channels": str(args.channels)}
            ) as answer:
                answer.raise_for_status()
            # The bare server paces itself; what it published is its rate times the time.
            return lambda: int((time.perf_counter() - began) * args.rate)

        return await _measure("bare", pid, port, args, tokens, scratch, start)


async def _gateway(args: argparse.Namespace, settings: Settings, env: dict[str, str],
                   tokens: Path, scratch: Path) -> Run:
    port = free_port()
    # Every bench user opens many streams at once: the stream policy must not refuse them.
    variant = dataclasses.replace(settings, http_port=port,
                                  rate_limits=f"{settings.rate_limits},{UNLIMITED_STREAMS}",
                                  gc_freeze=not args.no_gc_freeze,
                                  gc_collect_after_closed=args.gc_collect_after_closed
                                  or settings.gc_collect_after_closed)
    log = _logs(args, scratch) / "gateway.log"
    argv = [sys.executable, "-m", "mercato", "gateway"]
    base = f"http://127.0.0.1:{port}"
    publisher: list[Any] = []
    async with server_process(argv, {**env, **variant.to_env()}, base,
                              log, probe="/health/live") as pid:

        async def start() -> Callable[[], int]:
            task, count, producer = await _kafka_publisher(settings, args)
            publisher.extend((task, producer))
            return count

        async def after(clients: Clients) -> dict[str, Any]:
            counters = await _push_counters(base)
            extra: dict[str, Any] = {"evicted": counters["evicted"], "gc": _gc_figures(counters)}
            if args.churn:
                extra["churn"] = await _churn(clients, pid, args, base, log)
            if not args.storm:
                return extra
            before = await _push_counters(base)
            await clients.say(f"storm {args.storm} {args.storm_gap}")
            result: dict[str, Any] = json.loads(await asyncio.wait_for(clients.line(), 600))
            done = await _push_counters(base)
            return {**extra, **result, **{k: done[k] - before[k] for k in REPLAY_COUNTERS}}

        try:
            return await _measure("gateway", pid, port, args, tokens, scratch, start, after)
        finally:
            if publisher:
                publisher[0].cancel()
                await asyncio.wait({publisher[0]})
                await publisher[1].stop()


def _logs(args: argparse.Namespace, scratch: Path) -> Path:
    """Where the servers' and clients' logs go: ``--logs`` (kept) or the scratch dir."""
    return args.logs if args.logs is not None else scratch


async def _push_counters(base: str) -> dict[str, float]:
    """The gateway's push and GC counters from ``/metrics`` (replays, evictions, pauses)."""
    async with aiohttp.ClientSession() as session, session.get(base + "/metrics") as answer:
        text = await answer.text()
    wanted = {"mercato_push_replay_requests_total": "replay_requests",
              "mercato_push_replay_passes_total": "replay_passes",
              "mercato_push_evicted_total": "evicted",
              "mercato_gc_full_pause_seconds_count": "gc_count",
              "mercato_gc_full_pause_seconds_sum": "gc_seconds"}
    found: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in wanted:
            found[wanted[name]] = float(value)
        elif name.startswith(GC_BUCKET):
            # Cumulative buckets: the longest pause is in the first that holds them all.
            bound = name[len(GC_BUCKET):].split('"')[0]
            found[f"le {bound}"] = float(value)
    return found


def _gc_figures(counters: dict[str, float]) -> dict[str, Any]:
    """Full collections so far: how many, their seconds, the bucket of the longest."""
    count = counters.get("gc_count", 0.0)
    longest = next((k[3:] for k, v in counters.items() if k.startswith("le ") and v >= count),
                   None)
    return {"count": int(count), "seconds": counters.get("gc_seconds", 0.0),
            "longest_at_most_s": longest}


async def _churn(clients: Clients, pid: int, args: argparse.Namespace, base: str,
                 log: Path) -> dict[str, Any]:
    """Turn every connection over ``--churn`` times; the gateway's RSS after each round."""
    logged = _log_size(log)
    rss = [pid_rss_mb(pid) or 0.0]
    for _ in range(args.churn):
        await clients.say(f"churn {args.connections}")
        json.loads(await asyncio.wait_for(clients.line(), 600))
        # A few policy ticks, so a full collection due after this round has run.
        await asyncio.sleep(3.0)
        rss.append(pid_rss_mb(pid) or 0.0)
    return {"rounds": args.churn, "rss_mb": rss, "policy_pauses_ms": _policy_pauses(log, logged),
            "gc": _gc_figures(await _push_counters(base))}


def _log_size(log: Path) -> int:
    return log.stat().st_size if log.exists() else 0


def _policy_pauses(log: Path, offset: int) -> list[float]:
    """The pauses the gateway logged for the policy's full collections after ``offset``."""
    if not log.exists():
        return []
    with log.open("rb") as lines:
        lines.seek(offset)
        return [orjson.loads(line).get("pause_ms") for line in lines
                if b"full garbage collection" in line]


def _print(runs: list[Run], args: argparse.Namespace) -> list[str]:
    head = (f"{'server':<9}{'conns':>7}{'published':>10}{'deliv/s':>9}{'p50 ms':>8}"
            f"{'p99 ms':>8}{'KB/conn':>9}{'idle cpu':>9}{'cpu ms/1k':>10}{'deliv/cpu-s':>12}"
            f"{'clients cpu':>12}{'1013':>6}{'dropped':>8}")
    print(head)
    print("-" * len(head))
    for r in runs:
        print(f"{r.name:<9}{r.connections:>7}{r.published:>10}{r.rate:>9.0f}"
              f"{r.p50_ms or 0:>8.1f}{r.p99_ms or 0:>8.1f}{r.memory_kb_per_connection:>9.1f}"
              f"{r.idle_cpu_share:>9.0%}{r.cpu_ms_per_1000:>10.1f}{r.per_core:>12.0f}{r.client_cpu_share:>12.0%}{r.slow_closed:>6}{r.dropped:>8}")
    lines = []
    by = {r.name: r for r in runs}
    if "bare" in by and "gateway" in by and by["bare"].per_core:
        ratio = by["gateway"].per_core / by["bare"].per_core
        lines.append(f"ratio gateway/bare deliveries per CPU-second = {ratio:.2f}")
    g = by.get("gateway")
    if g is not None:
        lines.append(
            f"push: {args.transport} connections {g.connections} events {args.rate:.0f}/s "
            f"deliveries {g.rate:.0f}/s p50 {g.p50_ms or 0:.1f} ms p99 {g.p99_ms or 0:.1f} ms; "
            f"memory {g.memory_kb_per_connection:.1f} KB/connection; gateway cpu "
            f"{g.cpu_ms_per_1000:.1f} ms per 1000 deliveries; closed slow {g.slow_closed} "
            f"dropped {g.dropped} gaps {g.gaps} duplicates {g.duplicates}"
        )
    if g is not None and "gc" in g.storm:
        gcs = g.storm["gc"]
        lines.append(f"gc: {gcs['count']} full collections in the gateway's run, "
                     f"{gcs['seconds']:.2f} s in all, the longest <= {gcs['longest_at_most_s']} s")
    if g is not None and args.churn:
        ch = g.storm["churn"]
        lines.append(
            f"churn: {ch['rounds']} rounds of {g.connections} closed and reopened; gateway RSS "
            f"MB after each {' '.join(f'{m:.0f}' for m in ch['rss_mb'])}; policy's full "
            f"collections' pauses ms {ch['policy_pauses_ms']}; "
            f"all full collections by then {ch['gc']['count']}")
    if g is not None and args.stalled:
        lines.append(f"stalled: {args.stalled} clients stopped reading; the gateway evicted "
                     f"{g.storm.get('evicted', 0)} (1013)")
    if g is not None and args.storm:
        st = g.storm
        lines.append(
            f"storm: {st['storm']} clients reconnected at once after {args.storm_gap:.0f} s "
            f"away, all resubscribed in {st['resubscribed_seconds']:.1f} s; "
            f"{st['caught_up']} caught up, gaps {st['gaps']} duplicates {st['duplicates']}; "
            f"{st.get('replay_requests', 0)} replay requests served by "
            f"{st.get('replay_passes', 0)} partition reads"
        )
    print("\n".join(lines))
    return lines


async def _run(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    from mercato.embedded import EmbeddedStack

    load = os.getloadavg()[0]
    if args.logs is not None:
        args.logs.mkdir(parents=True, exist_ok=True)
    hard = raise_fd_limit()
    if hard < args.connections + 1000:
        raise BenchError(f"the open-files hard limit ({hard}) is below --connections + 1000")
    stack = EmbeddedStack(scratch / "stack", startup_timeout=60.0)
    endpoints = await asyncio.to_thread(stack.start)
    try:
        settings = bench_settings(endpoints, scratch)
        await ensure_topics(settings)
        issuer = TokenService(settings)
        tokens = scratch / "tokens.txt"
        tokens.write_text("\n".join(issuer.issue_access(f"bench-user-{i}", ["buyer"])
                                    for i in range(args.users)))
        env = {k: v for k, v in os.environ.items() if not k.startswith("MERCATO_")}
        runs = []
        if args.only in (None, "bare"):
            runs.append(await _bare(args, env, tokens, scratch))
        if args.only in (None, "gateway"):
            runs.append(await _gateway(args, settings, env, tokens, scratch))
    finally:
        await asyncio.to_thread(stack.stop)
    lines = _print(runs, args)
    return {
        "date": datetime.date.today().isoformat(), "machine": machine_note(),
        "load_average_1m_at_start": load,
        "command": " ".join(["python -m bench.push_fanout", *sys.argv[1:]]),
        "params": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "runs": [r.as_dict() for r in runs], "lines": lines,
    }


def main(argv: list[str] | None = None) -> int:
    """Run both servers; exit 1 with the reason when a figure is not trustworthy."""
    args = _parser().parse_args(argv)
    if args.connections < 1 or args.channels < 1 or args.rate <= 0 or args.seconds <= 0:
        _parser().error("--connections, --channels, --rate and --seconds must be positive")
    if args.churn < 0:
        _parser().error("--churn must not be negative")
    if args.storm and (args.transport != "ws" or args.storm > args.connections):
        _parser().error("--storm needs --transport ws and at most --connections clients")
    with tempfile.TemporaryDirectory(prefix="mercato-bench-push-") as scratch:
        try:
            report = asyncio.run(_run(args, Path(scratch)))
        except BenchError as exc:
            print(f"bench.push_fanout: {exc}", file=sys.stderr)
            return 1
    print(f"wrote {write_json(f'push_fanout_{args.transport}', report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
