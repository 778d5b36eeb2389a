"""``GET /v1/ws``: the push WebSocket.

One reader loop (this handler) answers client frames. Everything sent goes
through the connection (``Connection.offer``), replies (``subscribed``,
``pong``, ``error``) included, which keeps them ordered with the events they
announce; the connection writes ready-made frames straight to the socket's
transport (``WsSink``), so there is no writer task and no queue per client.
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
from gateway.push.connection import Connection, Outgoing
from gateway.push.events import Control, error_frame
from gateway.push.hub import PushHub
from gateway.push.keys import PUSH_HUB
from gateway.push.positions import is_earliest, parse_position
from streams.errors import MercatoError

log = logging.getLogger(__name__)

HEARTBEAT = 30.0
MAX_FRAME = 64 * 1024
CLOSE_TIMEOUT = 5.0
ABANDON_AFTER = 30.0
BAD_FRAME = "BAD_FRAME"
UNKNOWN_TYPE = "UNKNOWN_TYPE"


class WsSink:
    """Writes a connection's frames to its socket; closes it with the connection's code."""

    __slots__ = ("_closing", "_request", "_transport", "_ws")

    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self._ws = ws
        self._request = request
        self._transport = request.transport
        self._closing: asyncio.Task[None] | None = None

    def encode(self, out: Outgoing) -> bytes:
        """The frame every WebSocket subscriber of ``out`` shares."""
        return out.ws_frame()

    def buffered(self) -> int:
        """Bytes the transport holds that the client has not read yet."""
        transport = self._transport
        return 0 if transport is None else transport.get_write_buffer_size()

    def write(self, data: bytes) -> None:
        """Hand ``data`` to the transport, unless the stream is already closing."""
        transport = self._transport
        # Nothing may follow a close frame, and a closing transport drops writes anyway.
        if transport is not None and not transport.is_closing() and not self._ws.closed:
            transport.write(data)

    def keep_alive(self, now: float, quiet: float) -> None:
        """Nothing to do: aiohttp pings the client (``HEARTBEAT``) and drops a dead one."""

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake; ``closed()`` waits for it."""
        if self._closing is None:
            self._closing = asyncio.create_task(self._close(code, reason), name="push-ws-close")

    async def closed(self) -> None:
        """Wait for the closing handshake started by ``close`` (if any) to finish."""
        if self._closing is not None:
            await asyncio.wait({self._closing})

    async def _close(self, code: int, reason: str) -> None:
        try:
            # A client that stopped reading never answers; cancelling makes aiohttp close
            # the transport, which still sends what it buffers (the close frame last).
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self._ws.close(code=code, message=reason.encode())
        except (TimeoutError, ConnectionError):
            pass
        except Exception:  # a half torn-down transport; nobody reads this task's result
            log.warning("closing a push WebSocket failed", exc_info=True)
        finally:
            # Here, not in the handler: aiohttp cancels the handler when the client is gone.
            # Whatever the close did, or the cycles it leaves would be frozen for good.
            release(self._request, self._ws)
        transport = self._transport
        if transport is not None and transport.get_write_buffer_size() > 0:
            # Bound what a peer that never reads again can hold: drop its buffer later.
            asyncio.get_running_loop().call_later(ABANDON_AFTER, transport.abort)


async def websocket(request: web.Request) -> web.WebSocketResponse:
    """Authenticate (before the upgrade, so failures are plain 401s), then serve frames."""
    principal = authenticate(request, request.app[TOKENS], allow_ticket=True)
    hub = request.app[PUSH_HUB]
    # No compression: every client gets the very bytes the hub encoded once per event.
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT, max_msg_size=MAX_FRAME, timeout=CLOSE_TIMEOUT,
                               compress=False)
    await prepare(request, ws)
    sink = WsSink(ws, request)
    conn = hub.open(principal, sink)
    try:
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                await _handle(hub, conn, msg.data)
            elif msg.type is WSMsgType.BINARY:
                _reply(hub, conn, error_frame(BAD_FRAME, "frames must be JSON text"))
            elif msg.type is WSMsgType.ERROR:
                break
    finally:
        hub.close(conn)  # closes the socket with conn's code (evicted, expired, shut down)
        await sink.closed()
    return ws


def release(request: web.Request, ws: web.WebSocketResponse) -> None:
    """Break the reference cycles aiohttp (3.14) leaves between a closed WebSocket's objects.

    Left alone, each closed connection is garbage only a full collection frees, and a
    frozen one never (gateway.runtime.gc_policy): ~15 KB a connection, measured. Called
    once the response is closed, when nothing will read from the socket again.
    """
    forget_tracebacks(ws.exception())
    # The protocol keeps the response's heartbeat callback (``set_parser``) after the
    # connection is lost, and the response's reader keeps the protocol.
    request.protocol._data_received_cb = None


def forget_tracebacks(error: BaseException | None) -> None:
    """Drop the tracebacks of ``error`` and of the errors it was raised from or during.

    aiohttp keeps the error that ended a WebSocket (``ws.exception()``, a reset for a
    client that just left) and its traceback's frames hold the response: a reference
    cycle through every object of the connection, which only a full collection frees,
    and a frozen one never (gateway.runtime.gc_policy). Without the tracebacks reference
    counting frees the closed connection at once.
    """
    pending: list[BaseException | None] = [error]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        current.__traceback__ = None
        pending += (current.__context__, current.__cause__)


def _reply(hub: PushHub, conn: Connection, frame: Control) -> None:
    hub.deliver(conn, frame)


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
                if partition != hub.partition_of(channel):
                    # An id from another channel: its offsets mean nothing for this one.
                    _reply(hub, conn, error_frame(
                        "INVALID_POSITION", f"{after!r} is not a position of {channel}", named))
                    return
            # Validate everything before the reply, so "subscribed" is never followed by an error.
            hub.subscribe(conn, [channel])
            _reply(hub, conn, Control({"type": "subscribed", "channel": channel}))
            await hub.resume(conn, [channel], partition, offset)
        else:
            _reply(hub, conn, error_frame(UNKNOWN_TYPE, f"unknown frame type {str(kind)[:40]!r}"))
    except MercatoError as exc:
        _reply(hub, conn, error_frame(exc.code, exc.detail, named))
