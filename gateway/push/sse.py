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
partition is missing from the vector (newly added) starts live.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

import orjson
from aiohttp import web

from gateway.http.edge import prepare
from gateway.identity.auth import authenticate
from gateway.keys import SETTINGS, TOKENS
from gateway.push.connection import Connection
from gateway.push.events import Control, PushEvent
from gateway.push.hub import MAX_SUBSCRIPTIONS, PushHub
from gateway.push.keys import PUSH_HUB
from gateway.push.positions import Vector, format_vector, parse_vector
from streams.errors import InvalidInput

log = logging.getLogger(__name__)

RETRY_MS = 2000
HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx must not buffer the stream
}


async def events(request: web.Request) -> web.StreamResponse:
    """Authorize every channel before the stream starts, then replay and stream."""
    principal = authenticate(request, request.app[TOKENS], allow_ticket=True)
    hub = request.app[PUSH_HUB]
    channels = [(await hub.authorize(principal, raw)).name for raw in _requested(request)]
    resume = _resume_vector(request)
    response = web.StreamResponse(headers=HEADERS)
    await prepare(request, response)
    conn = hub.open(principal)
    try:
        plan = _plan(hub, channels, resume)
        hub.subscribe(conn, channels)
        conn.hold(channels)  # before any await: live events wait behind their replay
        # Keep the client's other partitions, so dropping a channel for a while loses nothing.
        start: Vector = {**(resume or {}), **{p: after for p, (after, _) in plan.items()}}
        replays = asyncio.create_task(_replay(hub, conn, plan), name="push-sse-replay")
        try:
            await _stream(request, response, conn, start, channels)
        finally:
            replays.cancel()
            await asyncio.wait({replays})
    finally:
        hub.close(conn)
        with contextlib.suppress(ConnectionError):
            await response.write_eof()
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
    # One partition at a time: each batch releases that partition's held live events.
    for partition, (after, names) in sorted(plan.items()):
        await hub.resume(conn, names, partition, after)


async def _stream(
    request: web.Request,
    response: web.StreamResponse,
    conn: Connection,
    vector: Vector,
    channels: list[str],
) -> None:
    heartbeat = request.app[SETTINGS].sse_heartbeat
    ready = orjson.dumps({"channels": channels}).decode()
    try:
        head = f"retry: {RETRY_MS}\nid: {format_vector(vector)}\nevent: ready\ndata: {ready}\n\n"
        await response.write(head.encode())
        while True:
            try:
                async with asyncio.timeout(heartbeat):
                    out = await conn.next()
            except TimeoutError:
                if request.transport is None or request.transport.is_closing():
                    return  # client gone; nothing to flush
                await response.write(b": keepalive\n\n")
                continue
            if out is None:
                break
            await response.write(_frame(out, vector))
        closing = orjson.dumps({"code": conn.close_code, "reason": conn.close_reason}).decode()
        await response.write(f"event: close\ndata: {closing}\n\n".encode())
    except ConnectionError:
        return  # the client disconnected mid-write


def _frame(out: PushEvent | Control, vector: Vector) -> bytes:
    if isinstance(out, Control):
        kind = str(out.frame.get("type", "message"))
        return f"event: {kind}\ndata: {orjson.dumps(out.frame).decode()}\n\n".encode()
    vector[out.partition] = out.offset
    data = orjson.dumps({"channel": out.channel, "event": out.envelope}).decode()
    # A line break in the type would end the field early and corrupt the stream.
    kind = out.type.replace("\r", " ").replace("\n", " ")
    return f"id: {format_vector(vector)}\nevent: {kind}\ndata: {data}\n\n".encode()
