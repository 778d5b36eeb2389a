"""``GET /v1/ws``: the push WebSocket.

One reader loop (this handler) answers client frames; one writer task drains
the connection's queue, so the hub's fan-out is only ever ``put_nowait``.
Replies (``subscribed``, ``pong``, ``error``) go through the same queue, which
keeps them ordered with the events they announce.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from gateway.http.edge import prepare
from gateway.identity.auth import authenticate
from gateway.keys import TOKENS
from gateway.push.channels import parse_channel
from gateway.push.connection import Connection
from gateway.push.events import Control, PushEvent, error_frame
from gateway.push.hub import PushHub
from gateway.push.keys import PUSH_HUB
from gateway.push.positions import is_earliest, parse_position
from streams.errors import MercatoError

log = logging.getLogger(__name__)

HEARTBEAT = 30.0
MAX_FRAME = 64 * 1024
CLOSE_TIMEOUT = 5.0
BAD_FRAME = "BAD_FRAME"
UNKNOWN_TYPE = "UNKNOWN_TYPE"


async def websocket(request: web.Request) -> web.WebSocketResponse:
    """Authenticate (before the upgrade, so failures are plain 401s), then serve frames."""
    principal = authenticate(request, request.app[TOKENS], allow_ticket=True)
    hub = request.app[PUSH_HUB]
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT, max_msg_size=MAX_FRAME, timeout=CLOSE_TIMEOUT)
    await prepare(request, ws)
    conn = hub.open(principal)
    writer = asyncio.create_task(_write(ws, conn), name="push-ws-writer")
    try:
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                await _handle(hub, conn, msg.data)
            elif msg.type is WSMsgType.BINARY:
                _reply(hub, conn, error_frame(BAD_FRAME, "frames must be JSON text"))
            elif msg.type is WSMsgType.ERROR:
                break
    finally:
        hub.close(conn)  # the writer sees the end and closes the socket with conn's code
        await asyncio.wait({writer}, timeout=CLOSE_TIMEOUT + 1)
        if not writer.done():
            writer.cancel()
            await asyncio.wait({writer})
        if not writer.cancelled() and (exc := writer.exception()) is not None:
            log.warning("push writer failed", exc_info=exc)
    return ws


async def _write(ws: web.WebSocketResponse, conn: Connection) -> None:
    try:
        while (out := await conn.next()) is not None:
            await ws.send_str(_encode(out))
    except ConnectionError:
        return  # the peer went away; the reader loop ends on its own
    await ws.close(code=conn.close_code or 1000, message=conn.close_reason.encode())


def _encode(out: PushEvent | Control) -> str:
    if isinstance(out, Control):
        return orjson.dumps(out.frame).decode()
    frame = {"type": "event", "channel": out.channel, "id": out.id, "event": out.envelope}
    return orjson.dumps(frame).decode()


def _reply(hub: PushHub, conn: Connection, frame: Control) -> None:
    if not conn.offer(frame):
        hub.evict(conn)


async def _handle(hub: PushHub, conn: Connection, data: str) -> None:
    try:
        frame: Any = orjson.loads(data)
    except orjson.JSONDecodeError:
        _reply(hub, conn, error_frame(BAD_FRAME, "frames must be JSON"))
        return
    if not isinstance(frame, dict):
        _reply(hub, conn, error_frame(BAD_FRAME, "frames must be JSON objects"))
        return
    kind = frame.get("type")
    raw = frame.get("channel")
    named = raw if isinstance(raw, str) else None
    try:
        if kind == "ping":
            _reply(hub, conn, Control({"type": "pong"}))
        elif kind == "unsubscribe":
            channel = parse_channel(raw).name  # leaving needs no permission
            hub.unsubscribe(conn, channel)
            _reply(hub, conn, Control({"type": "unsubscribed", "channel": channel}))
        elif kind in ("subscribe", "resume"):
            channel = (await hub.authorize(conn.principal, raw)).name
            after = frame.get("after") if kind == "resume" else None
            if kind == "resume" and not isinstance(after, str):
                _reply(hub, conn, error_frame("INVALID_POSITION", "resume needs 'after'", named))
                return
            if after is None:
                hub.subscribe(conn, [channel])
                _reply(hub, conn, Control({"type": "subscribed", "channel": channel}))
                return
            if is_earliest(after):
                partition, offset = hub.partition_of(channel), -1
            else:
                partition, offset = parse_position(after)
            # Validate everything before the reply, so "subscribed" is never followed by an error.
            hub.subscribe(conn, [channel])
            _reply(hub, conn, Control({"type": "subscribed", "channel": channel}))
            await hub.resume(conn, [channel], partition, offset)
        else:
            _reply(hub, conn, error_frame(UNKNOWN_TYPE, f"unknown frame type {str(kind)[:40]!r}"))
    except MercatoError as exc:
        _reply(hub, conn, error_frame(exc.code, exc.detail, named))
