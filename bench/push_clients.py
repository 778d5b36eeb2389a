"""Many push clients in one process, cheap enough not to be the bottleneck.

    python -m bench.push_clients --port P --transport ws|sse --channels C --connections N \
        --tokens FILE [--path-ws /v1/ws] [--path-sse /v1/events] [--stalled K]

Each client is a bare ``asyncio.Protocol``: it performs the WebSocket handshake (or the
SSE request) itself. A WebSocket client splits frames (answering pings, as a browser
does) but never decodes JSON: every benchmark event carries
``"benchSentNs":<wall-clock ns>`` and ``"benchSeq":<n>`` (its number on its channel),
found with ``bytes.find``, so a delivery costs little more than the read. SSE clients
only count those markers in the byte stream.

Driven over stdin/stdout by ``bench.push_fanout``: it prints ``ready N`` once every
client is subscribed, then answers ``measure`` (reset counters, start recording),
``report`` (one JSON line), ``storm K GAP`` (WebSocket: the first K clients drop their
connection, wait GAP seconds and reconnect all at once, each resuming after the last
event id it saw; one JSON line when all are back), ``churn K`` (the first K clients
close and K fresh ones subscribe in their place; one JSON line when all are back) and
``exit``. ``--stalled K`` makes
the first K clients stop reading once subscribed (they should be evicted with 1013;
the others should not notice).
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
SEQ = b'"benchSeq":'
FRAME_ID = b'","id":"'  # the frame's id; the envelope's own id follows '{"'
SSE_CLOSE = b"event: close"
SLOW = 1013
CONNECT_CONCURRENCY = 200
HANDSHAKE_TIMEOUT = 60.0


def raise_fd_limit() -> int:
    """Lift the soft open-files limit to the hard one (10,000 sockets need it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (the zero mask is legal and keeps it a plain copy)."""
    size = len(payload)
    if size < 126:
        head = bytes([0x80 | opcode, 0x80 | size])
    else:
        head = bytes([0x80 | opcode, 0x80 | 126]) + size.to_bytes(2, "big")
    return head + b"\x00\x00\x00\x00" + payload


def _number(data: bytes, marker: bytes) -> int | None:
    at = data.find(marker)
    if at < 0:
        return None
    start = stop = at + len(marker)
    while stop < len(data) and 48 <= data[stop] <= 57:
        stop += 1
    return int(data[start:stop]) if stop > start else None


class Stats:
    """What every client of this process saw, shared so the counting stays cheap."""

    def __init__(self) -> None:
        self.measuring = False
        self.deliveries = 0
        self.latencies = array.array("q")
        self.slow_closed = 0
        self.dropped = 0
        self.subscribed = 0
        self.gaps = 0
        self.duplicates = 0


class Client(asyncio.Protocol):
    """One connection; splits WebSocket frames (or scans SSE bytes), never decodes JSON."""

    def __init__(self, stats: Stats, request: bytes, first: bytes | None, *,
                 websocket: bool) -> None:
        self.stats = stats
        self._request = request
        self._first = first
        self._websocket = websocket
        self._head = b""
        self._buffer = b""
        self._upgraded = False
        self._stopping = False
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        # The last event seen (a WebSocket resume point) and its number on the channel.
        self.last_id: str | None = None
        self.last_seq: int | None = None
        self.received = 0

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
            if self._first is not None and self.transport is not None:
                self.transport.write(self._first)
        if self._websocket:
            self._frames(self._buffer + data if self._buffer else data, now)
        else:
            self._scan(self._buffer + data if self._buffer else data, now)

    def _frames(self, data: bytes, now: int) -> None:
        pos, size = 0, len(data)
        while size - pos >= 2:
            length, head = data[pos + 1] & 0x7F, 2
            if length == 126:
                if size - pos < 4:
                    break
                length, head = int.from_bytes(data[pos + 2:pos + 4], "big"), 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, head = int.from_bytes(data[pos + 2:pos + 10], "big"), 10
            if size - pos < head + length:
                break
            opcode = data[pos] & 0x0F
            payload = data[pos + head:pos + head + length]
            pos += head + length
            if opcode == 0x1:
                self._text(payload, now)
            elif opcode == 0x9 and self.transport is not None:
                self.transport.write(client_frame(0xA, payload))  # pong
            elif opcode == 0x8 and int.from_bytes(payload[:2], "big") == SLOW:
                self.stats.slow_closed += 1
        self._buffer = data[pos:]

    def _text(self, payload: bytes, now: int) -> None:
        sent = _number(payload, MARKER)
        if sent is None:
            if not self.ready.done() and b'"subscribed"' in payload:
                self._ready()
            return
        stats = self.stats
        self.received += 1
        if stats.measuring:
            stats.deliveries += 1
            stats.latencies.append(now - sent)
        seq = _number(payload, SEQ)
        if seq is not None and self.last_seq is not None:
            if seq <= self.last_seq:
                stats.duplicates += 1
            elif seq > self.last_seq + 1:
                stats.gaps += 1
        if seq is not None:
            self.last_seq = max(seq, self.last_seq or 0)
        at = payload.find(FRAME_ID)
        if at >= 0:
            end = payload.find(b'"', at + len(FRAME_ID))
            self.last_id = payload[at + len(FRAME_ID):end].decode()

    def _scan(self, data: bytes, now: int) -> None:
        stats = self.stats
        if not self.ready.done() and b"event: ready" in data:
            self._ready()
        done = 0  # everything before this index has been counted
        found = data.find(MARKER)
        while found >= 0:
            start = stop = found + len(MARKER)
            while stop < len(data) and 48 <= data[stop] <= 57:
                stop += 1
            if stop == len(data):
                break  # the number may continue in the next read
            if stats.measuring:
                stats.deliveries += 1
                stats.latencies.append(now - int(data[start:stop]))
            done = stop
            found = data.find(MARKER, stop)
        if SSE_CLOSE in data[done:]:
            stats.slow_closed += 1
        # Keep what may hold a marker cut in two (a marker and its digits are < 40 bytes),
        # and nothing already counted.
        self._buffer = data[found:] if found >= 0 else data[max(done, len(data) - 40):]

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


class Fleet:
    """Every client of this process and how to open them."""

    def __init__(self, args: argparse.Namespace, tokens: list[str]) -> None:
        self.args = args
        self.tokens = tokens
        self.stats = Stats()
        self.clients: list[Client] = []
        self._slots = asyncio.Semaphore(CONNECT_CONCURRENCY)

    def channel(self, index: int) -> str:
        return f"product:bench-{index % self.args.channels:05d}"

    def _request(self, index: int) -> bytes:
        args = self.args
        host = f"127.0.0.1:{args.port}"
        if args.transport == "ws":
            key = base64.b64encode(os.urandom(16)).decode()
            lines = [f"GET {args.path_ws} HTTP/1.1", f"Host: {host}", "Upgrade: websocket",
                     "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
                     "Sec-WebSocket-Version: 13"]
        else:
            lines = [f"GET {args.path_sse}?channels={self.channel(index)} HTTP/1.1",
                     f"Host: {host}", "Accept: text/event-stream"]
        if self.tokens:
            lines.append(f"Authorization: Bearer {self.tokens[index % len(self.tokens)]}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def open(self, index: int, after: str | None = None) -> Client:
        """Connect client ``index`` and wait until it follows its channel."""
        websocket = self.args.transport == "ws"
        first = None
        if websocket:
            frame: dict[str, Any] = {"type": "subscribe", "channel": self.channel(index)}
            if after is not None:
                frame = {"type": "resume", "channel": self.channel(index), "after": after}
            first = client_frame(0x1, json.dumps(frame).encode())
        client = Client(self.stats, self._request(index), first, websocket=websocket)
        loop = asyncio.get_running_loop()
        async with self._slots:
            await loop.create_connection(lambda: client, "127.0.0.1", self.args.port)
            await asyncio.wait_for(client.ready, HANDSHAKE_TIMEOUT)
        return client

    async def open_all(self) -> None:
        self.clients = list(await asyncio.gather(
            *(self.open(i) for i in range(self.args.connections))))
        for client in self.clients[: self.args.stalled]:
            if client.transport is not None:
                client.transport.pause_reading()

    async def storm(self, count: int, gap: float) -> dict[str, Any]:
        """Drop ``count`` clients, wait ``gap`` s, bring them all back resuming at once."""
        gone = self.clients[:count]
        for client in gone:
            client.stop()
        await asyncio.sleep(gap)
        began = time.perf_counter()
        before = self.stats.gaps, self.stats.duplicates
        back = await asyncio.gather(*(
            self._reopen(i, old) for i, old in enumerate(gone)))
        resubscribed = time.perf_counter() - began
        self.clients[:count] = back
        # Missed events arrive first, then live ones: give the replay time to finish.
        await asyncio.sleep(gap + 2.0)
        caught_up = sum(1 for c in back if c.received > 0)
        return {"storm": count, "resubscribed_seconds": resubscribed,
                "received_after": sum(c.received for c in back), "caught_up": caught_up,
                "gaps": self.stats.gaps - before[0],
                "duplicates": self.stats.duplicates - before[1]}

    async def churn(self, count: int) -> dict[str, Any]:
        """Close ``count`` clients and open as many fresh ones (no resume) in their place."""
        began = time.perf_counter()
        for client in self.clients[:count]:
            client.stop()
        self.clients[:count] = await asyncio.gather(*(self.open(i) for i in range(count)))
        return {"churned": count, "seconds": time.perf_counter() - began}

    async def _reopen(self, index: int, old: Client) -> Client:
        client = await self.open(index, after=old.last_id or "earliest")
        client.last_seq = old.last_seq
        return client


def _report(stats: Stats, seconds: float) -> dict[str, Any]:
    ordered = sorted(stats.latencies)

    def rank(q: float) -> float | None:
        if not ordered:
            return None
        return ordered[max(0, int(q * len(ordered) + 0.999999) - 1)] / 1e6

    return {"deliveries": stats.deliveries, "seconds": seconds,
            "p50_ms": rank(0.50), "p99_ms": rank(0.99), "max_ms": rank(1.0),
            "slow_closed": stats.slow_closed, "dropped": stats.dropped,
            "gaps": stats.gaps, "duplicates": stats.duplicates}


async def _main(args: argparse.Namespace, tokens: list[str]) -> None:
    raise_fd_limit()
    fleet = Fleet(args, tokens)
    await fleet.open_all()
    stats = fleet.stats
    print(f"ready {stats.subscribed}", flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    started = time.perf_counter()
    while line := (await reader.readline()).decode().strip():
        command, *rest = line.split()
        if command == "measure":
            stats.deliveries, stats.latencies = 0, array.array("q")
            stats.measuring, started = True, time.perf_counter()
        elif command == "report":
            stats.measuring = False
            print(json.dumps(_report(stats, time.perf_counter() - started)), flush=True)
        elif command == "storm":
            print(json.dumps(await fleet.storm(int(rest[0]), float(rest[1]))), flush=True)
        elif command == "churn":
            print(json.dumps(await fleet.churn(int(rest[0]))), flush=True)
        elif command == "exit":
            break
    for client in fleet.clients:
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
