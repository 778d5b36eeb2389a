"""The recording ``Effects`` every decider test uses: emits and pushes are remembered.

Read models are only what the test hands in (in-memory fakes, or the real repositories
over a test database); anything else the decider reaches for fails loudly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from pymongo.asynchronous.database import AsyncDatabase

from stores.users import UserRepository
from streams.envelope import Envelope

R = TypeVar("R")


class RecordingEffects:
    """Remembers what an agent emitted and pushed instead of doing it."""

    def __init__(
        self,
        *,
        users: Any = None,
        repos: Mapping[type[Any], Any] | None = None,
        db: AsyncDatabase[dict[str, Any]] | None = None,
    ) -> None:
        """Fakes for the users read model and for ``repos``; real repositories over ``db``.

        ``repos`` maps each class a fake stands in for to the fake. Fakes are kept by class
        name, so a test reaches one (``effects.repos["AuditRepository"]``) without importing
        the real repository, and a fake need not subclass it.
        """
        self._users = users
        self._db = db
        self.repos: dict[str, Any] = {cls.__name__: fake for cls, fake in (repos or {}).items()}
        if users is not None:
            self.repos.setdefault(UserRepository.__name__, users)
        self.emitted: list[tuple[str, Envelope]] = []
        self.pushed: list[tuple[str, Envelope]] = []

    @property
    def users(self) -> Any:
        # Any, not UserRepository: the fakes are duck-typed and tests read their records.
        if self._users is None:
            raise LookupError("this decider must not touch the users read model")
        return self._users

    def repo(self, cls: type[R]) -> R:
        if cls.__name__ not in self.repos:
            if self._db is None:
                raise LookupError(f"this decider must not touch {cls.__name__}")
            # No fake given: the real repository, for tests whose guards live in MongoDB queries.
            self.repos[cls.__name__] = cls(self._db)  # type: ignore[call-arg]
        return cast(R, self.repos[cls.__name__])

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
    """Close the private loop Faust's unstarted consumer thread made.

    A Faust quirk, not Mercato's: iterating an agent's stream touches ``app.consumer``, whose
    aiokafka ConsumerThread creates a private event loop in __init__ (mode/threads.py:112).
    ``agent.test_context()`` never starts that thread, so nothing closes the loop, and
    filterwarnings = error turns the ResourceWarning into a session failure.
    """
    consumer = app._consumer
    thread = getattr(consumer, "_thread", None) if consumer is not None else None
    loop = getattr(thread, "thread_loop", None)
    if loop is not None and not loop.is_running() and not loop.is_closed():
        loop.close()
