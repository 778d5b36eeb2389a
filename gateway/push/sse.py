"""``GET /v1/events?channels=C1,C2``: the push feed as Server-Sent Events.

Ids are vectors, not single positions: a stream's channels may live on several
partitions and offsets are ordered only within one, so each ``id:`` carries
the last delivered offset of *every* partition of the stream, as
``"{partition}-{offset}"`` parts joined by ``.`` (e.g. ``"0-41.3-17"``). A
reconnect sends it back as ``Last-Event-ID`` (or ``?lastEventId=`` for clients
that cannot set headers) and each channel resumes after its partition's
offset; ``0``/``earliest`` replays from the start of retention. The first frame
is ``event: ready`` whose id is the stream's starting vector, so a client that
reconnects before any event still resumes without a gap. A channel whose
partition is missing from the vector (newly added) replays from the start of
retention, as ``gateway.push.positions`` defines a missing partition (bounded like
every replay).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

import orjson
from aiohttp import web

from gateway.http.edge import prepare
from gateway.identity.auth import authenticate
from gateway.keys import TOKENS
from gateway.push.connection import Connection, Outgoing
from gateway.push.events import Control, sse_frame
from gateway.push.hub import MAX_SUBSCRIPTIONS, PushHub
from gateway.push.keys import PUSH_HUB
from gateway.push.positions import Vector, format_vector, parse_vector
from streams.errors import InvalidInput

log = logging.getLogger(__name__)

RETRY_MS = 2000
CLOSE_TIMEOUT = 5.0
HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx must not buffer the stream
}


class SseSink:
    """Writes a stream's frames straight to its transport, as HTTP/1.1 chunks.

    The response is prepared (status and headers sent) before the sink is made, and
    aiohttp frames a length-less HTTP/1.1 answer as chunked, so a frame goes out as
    ``<size>\\r\\n<frame>\\r\\n``; ``write_eof`` sends the last chunk. Writing here rather
    than through ``StreamResponse.write`` spares a task wake-up per event per stream.
    """

    __slots__ = ("_chunked", "_done", "_idle_since", "_transport", "close_frame", "vector")

    def __init__(self, vector: Vector, transport: asyncio.Transport | None, *,
                 chunked: bool) -> None:
        # The stream's position: every ``id:`` carries all of it (see the module doc).
        self.vector = vector
        self.close_frame: bytes | None = None
        self._transport = transport
        self._chunked = chunked
        self._done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._idle_since = time.monotonic()

    def encode(self, out: Outgoing) -> bytes:
        """An event's shared body behind this stream's id vector, or a control frame."""
        if isinstance(out, Control):
            return out.sse_frame()
        self.vector[out.partition] = out.offset
        return b"id: " + format_vector(self.vector).encode() + b"\n" + out.sse_body()

    def buffered(self) -> int:
        """Bytes the transport holds that the client has not read yet."""
        transport = self._transport
        return 0 if transport is None else transport.get_write_buffer_size()

    def write(self, data: bytes) -> None:
        """Send ``data`` as one chunk; a transport found closing ends the stream."""
        transport = self._transport
        if transport is None or transport.is_closing():
            self._end()  # the client went away
            return
        if self._chunked:
            data = b"%x\r\n" % len(data) + data + b"\r\n"
        transport.write(data)
        self._idle_since = time.monotonic()

    def close(self, code: int, reason: str) -> None:
        """Send ``event: close`` with ``code``; the handler then ends the response."""
        self.write(sse_frame("close", {"code": code, "reason": reason}))
        self._end()

    def keep_alive(self, now: float, quiet: float) -> None:
        """A comment if nothing was sent for ``quiet`` seconds (proxies drop idle streams);
        also how a stream finds out that its client has gone."""
        if now - self._idle_since >= quiet and not self._done.done():
            self.write(b": keepalive\n\n")

    async def ended(self) -> None:
        """Wait until the stream is closed or its client has gone."""
        await self._done

    def _end(self) -> None:
        if not self._done.done():
            self._done.set_result(None)


async def events(request: web.Request) -> web.StreamResponse:
    """Authorize every channel before the stream starts, then replay and stream."""
    principal = authenticate(request, request.app[TOKENS], allow_ticket=True)
    hub = request.app[PUSH_HUB]
    channels = [(await hub.authorize(principal, raw)).name for raw in _requested(request)]
    resume = _resume_vector(request)
    response = web.StreamResponse(headers=HEADERS)
    await prepare(request, response)
    plan = _plan(hub, channels, resume)
    # Keep the client's other partitions, so dropping a channel for a while loses nothing.
    start: Vector = {**(resume or {}), **{p: after for p, (after, _) in plan.items()}}
    chunked = response.headers.get("Transfer-Encoding") == "chunked"  # set by prepare
    sink = SseSink(dict(start), request.transport, chunked=chunked)
    ready = orjson.dumps({"channels": channels}).decode()
    # Nothing awaited from the plan to the subscription, so no live event falls between.
    sink.write(f"retry: {RETRY_MS}\nid: {format_vector(start)}\nevent: ready\n"
               f"data: {ready}\n\n".encode())
    conn = hub.open(principal, sink)
    try:
        hub.subscribe(conn, channels)
        conn.hold(channels)  # live events wait behind their replay
        replays = asyncio.create_task(_replay(hub, conn, plan), name="push-sse-replay")
        try:
            await sink.ended()
        finally:
            replays.cancel()
            await asyncio.wait({replays})
    finally:
        hub.close(conn)
        try:
            # A client that stopped reading never lets the last chunk drain: bounded.
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await response.write_eof()
        except (TimeoutError, ConnectionError):
            if request.transport is not None:
                request.transport.abort()
    return response


def _requested(request: web.Request) -> list[str]:
    raw = request.query.get("channels", "")
    names = list(dict.fromkeys(c.strip() for c in raw.split(",") if c.strip()))
    if not names:
        raise InvalidInput("give one or more channels: ?channels=user:{id},product:{id}",
                           code="INVALID_CHANNEL")
    if len(names) > MAX_SUBSCRIPTIONS:
        raise InvalidInput(f"at most {MAX_SUBSCRIPTIONS} channels per stream",
                           code="TOO_MANY_SUBSCRIPTIONS")
    return names


def _resume_vector(request: web.Request) -> Vector | None:
    """The client's resume vector, or ``None`` for a fresh (live-only) stream."""
    raw = request.headers.get("Last-Event-ID") or request.query.get("lastEventId")
    if raw is None or not raw.strip():
        return None
    return parse_vector(raw.strip())


def _plan(
    hub: PushHub, channels: Iterable[str], resume: Vector | None
) -> dict[int, tuple[int, list[str]]]:
    """Per partition: (resume-after offset, channels); a fresh stream starts at the hub's end."""
    plan: dict[int, tuple[int, list[str]]] = {}
    for channel in channels:
        partition = hub.partition_of(channel)
        after = hub.position(partition) if resume is None else resume.get(partition, -1)
        plan.setdefault(partition, (after, []))[1].append(channel)
    return plan


async def _replay(hub: PushHub, conn: Connection, plan: dict[int, tuple[int, list[str]]]) -> None:
    # Partitions concurrently (each batch releases its own partition's held events), so a
    # stream on many partitions does not hold live events behind one slow replay after
    # another.
    await asyncio.gather(*(hub.resume(conn, names, partition, after)
                           for partition, (after, names) in sorted(plan.items())))
