"""A recording ``Effects`` for deciders that only emit and push (no read models)."""

from __future__ import annotations

from typing import Any, TypeVar

from stores.users import UserRepository
from streams.envelope import Envelope

R = TypeVar("R")


class RecordingEffects:
    """Remembers what an agent emitted and pushed instead of doing it."""

    def __init__(self) -> None:
        self.emitted: list[tuple[str, Envelope]] = []
        self.pushed: list[tuple[str, Envelope]] = []

    @property
    def users(self) -> UserRepository:
        raise LookupError("this decider must not touch the users read model")

    def repo(self, cls: type[R]) -> R:
        raise LookupError(f"this decider must not touch {cls.__name__}")

    async def emit(self, topic: str, envelope: Envelope) -> None:
        # Round-trip through the wire format, as a real producer would.
        self.emitted.append((topic, Envelope.decode(envelope.encode())))

    async def push(self, channel: str, envelope: Envelope) -> None:
        self.pushed.append((channel, Envelope.decode(envelope.encode())))

    def on(self, topic: str) -> list[Envelope]:
        """Envelopes emitted on ``topic``, in order."""
        return [envelope for t, envelope in self.emitted if t == topic]

    def of(self, event_type: str) -> list[Envelope]:
        """Envelopes of ``event_type`` emitted on any topic, in order."""
        return [envelope for _, envelope in self.emitted if envelope.type == event_type]

    def clear(self) -> None:
        """Forget everything recorded so far."""
        self.emitted.clear()
        self.pushed.clear()


def identity(emitted: list[tuple[str, Envelope]]) -> list[tuple[str, str, str, str, Any]]:
    """What must repeat exactly on redelivery: topic, id, type, key and data."""
    return [(t, e.id, e.type, e.key, e.data) for t, e in emitted]


def close_unstarted_consumer_loop(app: Any) -> None:
    """Close the private loop Faust's unstarted consumer thread made (see the registrations test).

    ``agent.test_context()`` never starts aiokafka's ConsumerThread, whose __init__ creates an
    event loop; left open, filterwarnings = error turns the ResourceWarning into a failure.
    """
    consumer = app._consumer
    thread = getattr(consumer, "_thread", None) if consumer is not None else None
    loop = getattr(thread, "thread_loop", None)
    if loop is not None and not loop.is_running() and not loop.is_closed():
        loop.close()
