"""What travels from the hub to a connection's writer."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import orjson

from gateway.push.frames import text_frame
from gateway.push.positions import format_position
from streams.envelope import Envelope


class PushEvent:
    """One push-topic record addressed to ``channel``, encoded at most once per transport.

    Every subscriber of a channel gets the same frame, so the hub builds one
    ``PushEvent`` per record and the first WebSocket (or SSE) writer to need its bytes
    encodes them; the others reuse them.
    """

    __slots__ = ("_sse", "_ws", "channel", "envelope", "offset", "partition")

    def __init__(self, channel: str, partition: int, offset: int,
                 envelope: dict[str, Any]) -> None:
        self.channel = channel
        self.partition = partition
        self.offset = offset
        self.envelope = envelope
        self._ws: bytes | None = None
        self._sse: bytes | None = None

    def __repr__(self) -> str:
        return f"PushEvent({self.channel!r}, {self.partition}, {self.offset})"

    @property
    def id(self) -> str:
        """The event's position, the WS ``id``."""
        return format_position(self.partition, self.offset)

    @property
    def type(self) -> str:
        """The envelope's event type (``user.registered``, ...)."""
        return str(self.envelope.get("type", "message"))

    def ws_frame(self) -> bytes:
        """The whole WebSocket text frame (header included) carrying this event."""
        if self._ws is None:
            self._ws = text_frame(orjson.dumps(
                {"type": "event", "channel": self.channel, "id": self.id,
                 "event": self.envelope}))
        return self._ws

    def sse_body(self) -> bytes:
        """The SSE ``event:`` and ``data:`` lines; the ``id:`` line is per stream."""
        if self._sse is None:
            self._sse = sse_frame(self.type, {"channel": self.channel, "event": self.envelope})
        return self._sse


class Control:
    """A server frame that is not an event (``subscribed``, ``error``, ``presence``, ...).

    Like an event, it is encoded at most once per transport: a presence change goes to
    every subscriber of its channel.
    """

    __slots__ = ("_sse", "_ws", "frame")

    def __init__(self, frame: dict[str, Any]) -> None:
        self.frame = frame
        self._ws: bytes | None = None
        self._sse: bytes | None = None

    def __repr__(self) -> str:
        return f"Control({self.frame!r})"

    def ws_frame(self) -> bytes:
        """The whole WebSocket text frame carrying it."""
        if self._ws is None:
            self._ws = text_frame(orjson.dumps(self.frame))
        return self._ws

    def sse_frame(self) -> bytes:
        """The SSE frame carrying it (``event:`` its type, no ``id:``)."""
        if self._sse is None:
            self._sse = sse_frame(str(self.frame.get("type", "message")), self.frame)
        return self._sse


@dataclasses.dataclass(frozen=True, slots=True)
class ReplayBatch:
    """Replayed events for ``channels`` of one partition, up to and including ``through``."""

    channels: frozenset[str]
    partition: int
    through: int
    events: tuple[PushEvent, ...]
    notice: Control | None = None


def to_event(
    channel: str, partition: int, offset: int, value: bytes | str | Mapping[str, Any]
) -> PushEvent:
    """Validate a record value as an envelope; ``EnvelopeError`` if it is not one."""
    raw = dict(value) if isinstance(value, Mapping) else value
    return PushEvent(channel, partition, offset, Envelope.decode(raw).to_dict())


def sse_frame(kind: str, data: dict[str, Any]) -> bytes:
    """An SSE frame without an id (control frames and the closing one)."""
    # A line break in the type would end the field early and corrupt the stream.
    kind = kind.replace("\r", " ").replace("\n", " ")
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def error_frame(code: str, message: str, channel: str | None = None) -> Control:
    """An ``error`` frame; the connection stays open after it."""
    frame: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if channel is not None:
        frame["channel"] = channel
    return Control(frame)
