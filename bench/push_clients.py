"""Many push clients in one process, cheap enough not to be the bottleneck.

    python -m bench.push_clients --port P --transport ws|sse --channels C --connections N \
        --tokens FILE [--path-ws /v1/ws] [--path-sse /v1/events] [--stalled K]

Each client is a bare ``asyncio.Protocol``: it performs the WebSocket handshake (or the
SSE request) itself and never parses frames. Every benchmark event carries
``"benchSentNs":<wall-clock ns>``; a client finds those markers in the byte stream, so
one delivery costs a ``bytes.find``, not a JSON decode. A ``1013`` close frame and
``event: close`` are found the same way.

Driven over stdin/stdout by ``bench.push_fanout``: it prints ``ready N`` once every
client is subscribed, then answers ``measure`` (reset counters, start recording),
``report`` (one JSON line) and ``exit``. ``--stalled K`` makes the first K clients stop
reading once they are subscribed (they should be evicted with 1013; the others should
not notice).
"""

from __future__ import annotations

import argparse
import array
import asyncio
import base64
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import uvloop

MARKER = b'"benchSentNs":'
WS_SLOW_CLOSE = b"\x88\x02\x03\xf5"  # a close frame with code 1013
SSE_CLOSE = b"event: close"
SUBSCRIBED = b'"subscribed"'
CONNECT_CONCURRENCY = 200
HANDSHAKE_TIMEOUT = 60.0


def raise_fd_limit() -> int:
    """Lift the soft open-files limit to the hard one (10,000 sockets need it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def ws_text(payload: bytes) -> bytes:
    """A masked client text frame (the zero mask is legal and keeps it a plain copy)."""
    size = len(payload)
    if size < 126:
        head = bytes([0x81, 0x80 | size])
    else:
        head = bytes([0x81, 0x80 | 126]) + size.to_bytes(2, "big")
    return head + b"\x00\x00\x00\x00" + payload


class Stats:
    """What every client of this process saw, shared so the counting stays cheap."""

    def __init__(self) -> None:
        self.measuring = False
        self.deliveries = 0
        self.latencies = array.array("q")
        self.slow_closed = 0
        self.dropped = 0
        self.subscribed = 0


class Client(asyncio.Protocol):
    """One connection; counts markers, never decodes."""

    def __init__(self, stats: Stats, request: bytes, subscribe: bytes | None) -> None:
        self.stats = stats
        self._request = request
        self._subscribe = subscribe
        self._head = b""
        self._tail = b""
        self._upgraded = False
        self._stopping = False
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; they have its methods.
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self._request)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        now = time.time_ns()
        if not self._upgraded:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            status = self._head.split(b" ", 2)[1:2]
            if status not in ([b"101"], [b"200"]):
                self._fail(f"handshake answered {self._head[:200]!r}")
                return
            self._upgraded = True
            data, self._head = self._head[end + 4:], b""
            if self._subscribe is not None and self.transport is not None:
                self.transport.write(self._subscribe)
            else:
                self._ready()
        chunk = self._tail + data
        stats = self.stats
        if not self.ready.done() and (SUBSCRIBED in chunk or b"event: ready" in chunk):
            self._ready()
        done = 0  # everything before this index has been counted
        found = chunk.find(MARKER)
        while found >= 0:
            start = found + len(MARKER)
            stop = start
            while stop < len(chunk) and 48 <= chunk[stop] <= 57:
                stop += 1
            if stop == len(chunk):
                break  # the number may continue in the next read
            if stats.measuring:
                stats.deliveries += 1
                stats.latencies.append(now - int(chunk[start:stop]))
            done = stop
            found = chunk.find(MARKER, stop)
        if WS_SLOW_CLOSE in chunk[done:] or SSE_CLOSE in chunk[done:]:
            stats.slow_closed += 1
        # Keep what may hold a marker cut in two (a marker and its digits are < 40 bytes),
        # and nothing already counted.
        self._tail = chunk[found:] if found >= 0 else chunk[max(done, len(chunk) - 40):]

    def _ready(self) -> None:
        if not self.ready.done():
            self.stats.subscribed += 1
            self.ready.set_result(None)

    def _fail(self, reason: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(reason))
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._stopping:
            self.stats.dropped += 1
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed during the handshake: {exc!r}"))

    def stop(self) -> None:
        self._stopping = True
        if self.transport is not None:
            self.transport.close()


def _request(transport: str, path: str, host: str, token: str, channel: str) -> bytes:
    if transport == "ws":
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
                 "Sec-WebSocket-Version: 13"]
    else:
        lines = [f"GET {path}?channels={channel} HTTP/1.1", f"Host: {host}",
                 "Accept: text/event-stream"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _open_all(args: argparse.Namespace, stats: Stats, tokens: list[str]) -> list[Client]:
    loop = asyncio.get_running_loop()
    host = f"127.0.0.1:{args.port}"
    path = args.path_ws if args.transport == "ws" else args.path_sse
    slots = asyncio.Semaphore(CONNECT_CONCURRENCY)
    clients: list[Client] = []

    async def one(index: int) -> None:
        channel = f"product:bench-{index % args.channels:05d}"
        token = tokens[index % len(tokens)] if tokens else ""
        frame = json.dumps({"type": "subscribe", "channel": channel}).encode()
        subscribe = ws_text(frame) if args.transport == "ws" else None
        client = Client(stats, _request(args.transport, path, host, token, channel), subscribe)
        async with slots:
            await loop.create_connection(lambda: client, "127.0.0.1", args.port)
            clients.append(client)
            await asyncio.wait_for(client.ready, HANDSHAKE_TIMEOUT)

    await asyncio.gather(*(one(i) for i in range(args.connections)))
    for client in clients[: args.stalled]:
        if client.transport is not None:
            client.transport.pause_reading()
    return clients


def _report(stats: Stats, seconds: float) -> dict[str, Any]:
    ordered = sorted(stats.latencies)

    def rank(q: float) -> float | None:
        if not ordered:
            return None
        return ordered[max(0, int(q * len(ordered) + 0.999999) - 1)] / 1e6

    return {"deliveries": stats.deliveries, "seconds": seconds,
            "p50_ms": rank(0.50), "p99_ms": rank(0.99), "max_ms": rank(1.0),
            "slow_closed": stats.slow_closed, "dropped": stats.dropped}


async def _main(args: argparse.Namespace, tokens: list[str]) -> None:
    raise_fd_limit()
    stats = Stats()
    clients = await _open_all(args, stats, tokens)
    print(f"ready {stats.subscribed}", flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    started = time.perf_counter()
    while line := (await reader.readline()).decode().strip():
        if line == "measure":
            stats.deliveries, stats.latencies = 0, array.array("q")
            stats.measuring, started = True, time.perf_counter()
        elif line == "report":
            stats.measuring = False
            print(json.dumps(_report(stats, time.perf_counter() - started)), flush=True)
        elif line == "exit":
            break
    for client in clients:
        client.stop()


def main(argv: list[str] | None = None) -> None:
    """Open the clients and serve the driver's commands until ``exit``."""
    parser = argparse.ArgumentParser(prog="python -m bench.push_clients")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--transport", choices=("ws", "sse"), default="ws")
    parser.add_argument("--connections", type=int, required=True)
    parser.add_argument("--channels", type=int, required=True)
    parser.add_argument("--tokens", default="", help="a file of access tokens, one per line")
    parser.add_argument("--path-ws", default="/v1/ws")
    parser.add_argument("--path-sse", default="/v1/events")
    parser.add_argument("--stalled", type=int, default=0)
    args = parser.parse_args(argv)
    tokens = Path(args.tokens).read_text().split() if args.tokens else []
    uvloop.run(_main(args, tokens))


if __name__ == "__main__":
    main()
