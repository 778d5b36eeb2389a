"""Authenticated ``GET /v1/users/me`` through the whole gateway vs a bare aiohttp endpoint.

    python -m bench.gateway_auth [--seconds 5] [--connections 32]

Starts an embedded stack (broker, MongoDB-protocol server, Redis) on a temp dir, a user
document, then, one at a time and each as its own process served like ``mercato
gateway`` (uvloop, no aiohttp access log): the bare endpoint, the gateway with the rate
limiter, the gateway without it. The same load generator (``wrk`` if installed, else an
aiohttp client) drives each for the same time with the same keep-alive connections.

Each ratio line (req/s) also says how many µs of server CPU per request the first server
spends beyond the second: ``ratio full/bare = 0.93; µs added per request = 7.0 (...)``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from bench.common import (
    BenchError,
    BenchResult,
    machine_note,
    percentiles_ms,
    print_table,
    ratio_line,
    server_process,
    write_json,
)
from bench.load import run_load, wrk_available
from config import Settings
from gateway.identity.auth import TokenService
from mercato._procs import free_port
from streams.admin import ensure_topics

if TYPE_CHECKING:
    from mercato.embedded import Endpoints

USER_ID = "bench-user"
# High enough never to refuse the benchmark, so the limiter's whole path still runs.
UNLIMITED_READS = "read=1000000000/60:1000000000"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway_auth", description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per server")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections")
    parser.add_argument("--diagnose", action="store_true",
                        help="also measure the gateway's 404 path (full-404), and MongoDB "
                        "alone (find_one by _id from this process)")
    parser.add_argument("--profile", type=Path, default=None,
                        help="write py-spy collapsed stacks of each server here (needs py-spy)")
    return parser


def bench_settings(endpoints: Endpoints, scratch: Path) -> Settings:
    """A run's settings: the stack's services, with a database, topics and app id of its own."""
    run = uuid.uuid4().hex[:8]
    mongo = urlsplit(endpoints.mongo_url)
    return Settings(
        env="dev", kafka_url=endpoints.kafka_url,
        mongo_url=urlunsplit(mongo._replace(path=f"/bench_{run}")),
        redis_url=endpoints.redis_url, data_dir=scratch, jwt_secret="b" * 48,
        topic_prefix=f"bench{run}.", app_id=f"mercato-bench-{run}",
        kafka_idempotent=endpoints.broker != "tansu", rate_limits=UNLIMITED_READS,
    )


async def seed(settings: Settings) -> str:
    """Topics and the bench user; returns an access token of that user."""
    await ensure_topics(settings)
    await _seed_user(settings)
    return TokenService(settings).issue_access(USER_ID, ["buyer"])


async def _seed_user(settings: Settings) -> None:
    """The user the token names, projected straight into the read model."""
    from gateway.identity.passwords import hash_password
    from stores.mongo import database, ensure_indexes, mongo_client
    from stores.users import UserRepository

    client = mongo_client(settings, app_name="mercato-bench")
    try:
        db = database(client, settings)
        await ensure_indexes(db)
        await UserRepository(db).project_registered(
            user_id=USER_ID, email="bench@example.com", email_normalized="bench@example.com",
            name="Bench", roles=["buyer"], password_hash=await hash_password("bench-password"),
            created_at=datetime.datetime.now(datetime.UTC), event_id=uuid.uuid4().hex,
        )
    finally:
        await client.close()


async def _mongo_alone(settings: Settings, args: argparse.Namespace) -> BenchResult:
    """``find_one({_id})`` as the users repository does it, same concurrency, no HTTP."""
    from stores.mongo import database, mongo_client

    client = mongo_client(settings, app_name="mercato-bench")
    latencies: list[int] = []
    try:
        users = database(client, settings)["users"]
        await users.find_one({"_id": USER_ID})
        deadline = time.monotonic() + args.seconds

        async def worker() -> None:
            while time.monotonic() < deadline:
                sent = time.perf_counter_ns()
                if await users.find_one({"_id": USER_ID}) is None:
                    raise BenchError("the bench user vanished")
                latencies.append(time.perf_counter_ns() - sent)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(args.connections)))
        elapsed = time.perf_counter() - started
    finally:
        await client.close()
    p50, _p95, p99 = percentiles_ms(latencies)
    return BenchResult(name="mongo-alone", events=len(latencies), seconds=elapsed,
                       p50_ms=p50, p99_ms=p99)


async def _measure(
    name: str, argv: list[str], env: Mapping[str, str], port: int, token: str,
    args: argparse.Namespace, scratch: Path, *, path: str = "/v1/users/me", status: int = 200,
) -> BenchResult:
    base = f"http://127.0.0.1:{port}"
    url = base + path
    headers = {"Authorization": f"Bearer {token}"}
    async with server_process(argv, env, base, scratch / f"{name}.log") as pid:
        async with aiohttp.ClientSession(headers=headers) as session, session.get(url) as probe:
            if probe.status != status:
                raise BenchError(f"{name}: {url} answered {probe.status}: {await probe.text()}")
        if args.warmup > 0:
            await run_load(f"{name}-warmup", url, headers=headers,
                           connections=args.connections, seconds=args.warmup, status=status)
        idle_before = _cpu_seconds(pid)
        await asyncio.sleep(1.0)
        # Background work with no requests (Kafka reply consumer, pool monitors), per second.
        IDLE_CPU[name] = _cpu_seconds(pid) - idle_before
        spy = await profiler(args.profile, name, pid, args.seconds)
        cpu_before = _cpu_seconds(pid)
        try:
            result = await run_load(name, url, headers=headers, connections=args.connections,
                                    seconds=args.seconds, status=status)
        finally:
            if spy is not None:
                await spy.wait()
        # CPU the server itself spent per request: unlike req/s, barely moved by the other
        # processes sharing the 2 cores (load generator, MongoDB, Redis, broker, other runs).
        if result.events == 0:
            raise BenchError(f"{name}: no request of {url} completed in {args.seconds:.0f} s "
                             "(each took longer than the load generator's timeout)")
        CPU_US[name] = (_cpu_seconds(pid) - cpu_before) / result.events * 1e6
        return result


CPU_US: dict[str, float] = {}
IDLE_CPU: dict[str, float] = {}


def added_line(
    numerator: BenchResult, denominator: BenchResult, cpu_us: Mapping[str, float]
) -> str:
    """``ratio a/b = X.XX; µs added per request = Y.Y (server CPU a A.A, b B.B)``.

    The ratio is of req/s, which the load generator can bound (the aiohttp client does);
    the µs are the server's own CPU per request, which it cannot: the figure to weigh.
    """
    a, b = cpu_us[numerator.name], cpu_us[denominator.name]
    return (f"{ratio_line(numerator, denominator)}; µs added per request = {a - b:.1f} "
            f"(server CPU {numerator.name} {a:.1f}, {denominator.name} {b:.1f})")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def profiler(
    into: Path | None, name: str, pid: int, seconds: float
) -> asyncio.subprocess.Process | None:
    """py-spy sampling ``pid`` while it is measured (it costs the server a little)."""
    if into is None:
        return None
    await asyncio.to_thread(into.mkdir, parents=True, exist_ok=True)
    # A virtualenv's py-spy sits beside its python, which need not be on PATH.
    beside = Path(sys.executable).with_name("py-spy")
    spy = str(beside) if beside.exists() else shutil.which("py-spy")
    if spy is None:
        raise BenchError("--profile needs py-spy (pip install py-spy)")
    return await asyncio.create_subprocess_exec(
        spy, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
        "--rate", "1000", "--format", "raw", "--output", str(into / f"{name}.txt"), "--nonblocking",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )


async def _run(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    from mercato.embedded import EmbeddedStack

    load = os.getloadavg()[0]
    stack = EmbeddedStack(scratch / "stack", startup_timeout=60.0)
    # Started from a worker thread that lives with the loop (see EmbeddedStack.start).
    endpoints = await asyncio.to_thread(stack.start)
    try:
        settings = bench_settings(endpoints, scratch)
        token = await seed(settings)
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("MERCATO_")}
        results: list[BenchResult] = []
        port = free_port()
        bare = [sys.executable, "-m", "bench.bare_http", "--port", str(port)]
        results.append(await _measure("bare", bare, base_env, port, token, args, scratch))
        for name, enabled in (("full", True), ("full-nolimit", False)):
            port = free_port()
            variant = dataclasses.replace(settings, http_port=port, rate_limit_enabled=enabled)
            env = {**base_env, **variant.to_env()}
            gateway = [sys.executable, "-m", "mercato", "gateway"]
            results.append(await _measure(name, gateway, env, port, token, args, scratch))
        if args.diagnose:
            # The error path: someone else's profile is a 404 decided from the token alone
            # (a problem+json body and an access-log line; limiter on). And MongoDB alone.
            port = free_port()
            env = {**base_env, **dataclasses.replace(settings, http_port=port).to_env()}
            results.append(await _measure(
                "full-404", [sys.executable, "-m", "mercato", "gateway"], env, port, token,
                args, scratch, path="/v1/users/someone-else", status=404,
            ))
            results.append(await _mongo_alone(settings, args))
    finally:
        await asyncio.to_thread(stack.stop)
    bare_r, full_r, nolimit_r = results[:3]
    print_table(results)
    pairs = [(full_r, bare_r), (full_r, nolimit_r), (nolimit_r, bare_r)]
    if args.diagnose:
        pairs.append((results[3], bare_r))
    lines = [added_line(a, b, CPU_US) for a, b in pairs]
    print("\n".join(lines))
    if args.profile is not None:
        # py-spy reads the server's memory ~1000 times a second: that is charged to it.
        print("(measured under py-spy: server CPU per request includes its sampling cost)")
    print("server CPU per request: " + ", ".join(f"{k} {v:.0f} us" for k, v in CPU_US.items()))
    print("server CPU when idle: " + ", ".join(f"{k} {v:.0%}" for k, v in IDLE_CPU.items()))
    return {
        "date": datetime.date.today().isoformat(),
        "machine": machine_note(),
        "load_average_1m_at_start": load,
        "command": " ".join(["python -m bench.gateway_auth", *sys.argv[1:]]),
        "load_generator": "wrk -t1" if wrk_available() else "aiohttp client",
        "params": {"seconds": args.seconds, "warmup": args.warmup,
                   "connections": args.connections},
        "results": [r.as_dict() for r in results],
        "ratio_full_over_bare": full_r.rate / bare_r.rate,
        "ratio_full_over_nolimit": full_r.rate / nolimit_r.rate,
        "ratio_lines": lines,
        "server_cpu_us_per_request": dict(CPU_US),
        "server_cpu_us_added_per_request": {
            f"{a.name}-{b.name}": CPU_US[a.name] - CPU_US[b.name] for a, b in pairs
        },
        "profiled": args.profile is not None,
        "server_idle_cpu_share": dict(IDLE_CPU),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; exit 1 with the reason when a figure is not trustworthy."""
    args = _parser().parse_args(argv)
    if args.seconds <= 0 or args.connections < 1:
        _parser().error("--seconds and --connections must be positive")
    with tempfile.TemporaryDirectory(prefix="mercato-bench-gw-") as scratch:
        try:
            report = asyncio.run(_run(args, Path(scratch)))
        except BenchError as exc:
            print(f"gateway_auth failed: {exc}", file=sys.stderr)
            return 1
    print(f"machine: {report['machine']}, 1-min load average at start "
          f"{report['load_average_1m_at_start']:.2f}, load: {report['load_generator']}")
    print(f"results: {write_json('gateway_auth', report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
