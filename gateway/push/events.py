"""What travels from the hub to a connection's writer."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from gateway.push.positions import format_position
from streams.envelope import Envelope


@dataclasses.dataclass(frozen=True, slots=True)
class PushEvent:
    """One push-topic record addressed to ``channel``."""

    channel: str
    partition: int
    offset: int
    envelope: dict[str, Any]

    @property
    def id(self) -> str:
        """The event's position, the WS ``id``."""
        return format_position(self.partition, self.offset)

    @property
    def type(self) -> str:
        """The envelope's event type (``user.registered``, ...)."""
        return str(self.envelope.get("type", "message"))


@dataclasses.dataclass(frozen=True, slots=True)
class Control:
    """A server frame that is not an event (``subscribed``, ``error``, ``pong``, ...)."""

    frame: dict[str, Any]


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


def error_frame(code: str, message: str, channel: str | None = None) -> Control:
    """An ``error`` frame; the connection stays open after it."""
    frame: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if channel is not None:
        frame["channel"] = channel
    return Control(frame)
