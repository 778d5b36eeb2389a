"""The gateway's CPU per request in process: aiohttp's server protocol fed raw requests.

    python -m bench.gateway_inprocess [--requests 20000] [--rounds 3] [--path /v1/users/me]

No sockets and no load generator: each of ``--connections`` keep-alive connections is
aiohttp's own ``RequestHandler`` on a transport that discards what it is given, fed one
``GET`` at a time with a Bearer token. The event-loop thread's CPU per request repeats to
about ±1 µs, where ``bench.gateway_auth`` over real sockets moves by ±2 µs, so this is the
scale to weigh a change to the request path on (then confirm it with ``bench.gateway_auth``).
The bare endpoint, the full gateway and the gateway without its limiter run in turn, on
the embedded stack, ``--rounds`` times; the best round of each is reported, as requests
per CPU-second.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop
from aiohttp import web

from bench.bare_http import me as bare_me
from bench.common import BenchError, BenchResult, machine_note, print_table, ratio_line, write_json
from bench.gateway_auth import bench_settings, seed
from config import Settings

WARMUP_REQUESTS = 200  # per connection, unmeasured


class _Discard(asyncio.Transport):
    """A connected transport that drops what is written and says when something was."""

    def __init__(self) -> None:
        super().__init__()
        self.written: asyncio.Future[None] | None = None
        self.statuses: set[bytes] = set()  # the status lines seen

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if data[:5] == b"HTTP/":
            self.statuses.add(bytes(data[: bytes(data[:64]).find(b"\r\n")]))
        if self.written is not None and not self.written.done():
            self.written.set_result(None)

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8080)}.get(
            name, default
        )

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


async def _drive(app: web.Application, request: bytes, *, connections: int, total: int) -> float:
    """Event-loop CPU seconds for ``total`` requests over ``connections`` connections."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    server = runner.server
    if server is None:
        raise BenchError("the app runner did not set up a server")
    loop = asyncio.get_running_loop()

    statuses: set[bytes] = set()

    async def connection(count: int) -> None:
        protocol = server()
        transport = _Discard()
        protocol.connection_made(transport)
        for _ in range(count):
            transport.written = loop.create_future()
            protocol.data_received(request)
            await transport.written
            await asyncio.sleep(0)  # the handler's task finishes its response
        protocol.connection_lost(None)
        statuses.update(transport.statuses)

    try:
        await asyncio.gather(*(connection(WARMUP_REQUESTS) for _ in range(connections)))
        if statuses != {b"HTTP/1.1 200 OK"}:
            raise BenchError(f"expected only 200 answers, got {sorted(statuses)}")
        started = time.thread_time()
        await asyncio.gather(*(connection(total // connections) for _ in range(connections)))
        return time.thread_time() - started
    finally:
        await runner.cleanup()


def _app(name: str, settings: Settings) -> web.Application:
    from gateway.app import create_app

    if name == "bare":
        app = web.Application()
        app.router.add_get("/v1/users/me", bare_me)
        return app
    return create_app(dataclasses.replace(settings, rate_limit_enabled=name == "full"))


async def _run(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    from mercato.embedded import EmbeddedStack
    from streams.kafka_compat import apply_empty_fetch_backoff

    stack = EmbeddedStack(scratch / "stack", startup_timeout=60.0)
    endpoints = await asyncio.to_thread(stack.start)
    try:
        settings = bench_settings(endpoints, scratch)
        apply_empty_fetch_backoff(  # as `mercato gateway` does
            settings.kafka_empty_fetch_backoff_ms,
            idle_milliseconds=settings.kafka_idle_fetch_backoff_ms,
        )
        token = await seed(settings)
        request = (
            f"GET {args.path} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
            f"Authorization: Bearer {token}\r\n\r\n"
        ).encode()
        total = args.requests - args.requests % args.connections
        best: dict[str, float] = {}
        for _ in range(args.rounds):
            for name in ("bare", "full", "full-nolimit"):
                cpu = await _drive(_app(name, settings), request,
                                   connections=args.connections, total=total)
                print(f"{name:13s} {cpu / total * 1e6:6.1f} µs per request", flush=True)
                best[name] = min(best.get(name, cpu), cpu)
    finally:
        await asyncio.to_thread(stack.stop)
    results = [BenchResult(name=name, events=total, seconds=cpu) for name, cpu in best.items()]
    print_table(results)
    bare, full, nolimit = results
    lines = [ratio_line(full, bare), ratio_line(nolimit, bare)]
    print("\n".join(lines))
    print("CPU per request: " + ", ".join(
        f"{r.name} {r.seconds / r.events * 1e6:.1f} us" for r in results))
    return {
        "command": " ".join(["python -m bench.gateway_inprocess", *sys.argv[1:]]),
        "machine": machine_note(),
        "params": {"requests": total, "rounds": args.rounds, "connections": args.connections,
                   "path": args.path},
        "results": [r.as_dict() for r in results],
        "cpu_us_per_request": {r.name: r.seconds / r.events * 1e6 for r in results},
        "ratio_lines": lines,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; exit 1 with the reason when it could not be made."""
    parser = argparse.ArgumentParser(prog="python -m bench.gateway_inprocess",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000, help="measured, per variant")
    parser.add_argument("--rounds", type=int, default=3, help="best of this many rounds")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--path", default="/v1/users/me",
                        help="what to GET from the gateway (it must answer 200; the bare "
                        "endpoint is always /v1/users/me)")
    args = parser.parse_args(argv)
    if args.requests < args.connections or args.rounds < 1 or args.connections < 1:
        parser.error("--requests must be at least --connections, and both and --rounds positive")
    with tempfile.TemporaryDirectory(prefix="mercato-bench-inproc-") as scratch:
        try:
            report = uvloop.run(_run(args, Path(scratch)))
        except BenchError as exc:
            print(f"gateway_inprocess failed: {exc}", file=sys.stderr)
            return 1
    print(f"machine: {report['machine']}")
    print(f"results: {write_json('gateway_inprocess', report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
