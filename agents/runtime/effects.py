"""What agents do to the outside world, behind one small interface.

Agents decide; ``Effects`` carries the decision out. Production effects write
to Kafka through the Faust app's producer and to MongoDB; unit tests record
them. Every effect must be safe to repeat (at-least-once delivery).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar

import faust
from pymongo.asynchronous.database import AsyncDatabase

from config import Settings
from stores.mongo import database, ensure_indexes, mongo_client
from stores.users import UserRepository
from streams.envelope import Envelope
from streams.topics import CATALOGUE, partitions

R = TypeVar("R")
_PENDING_ACKS: ContextVar[list[Awaitable[Any]] | None] = ContextVar(
    "pending_acks", default=None
)


@contextlib.asynccontextmanager
async def acks_awaited_at_end() -> AsyncIterator[None]:
    """Within the block, sends are queued and their broker acks awaited together at the end.

    One record's effects are then one round trip, not one per event (in order: the
    producer keeps per-partition order), and the block still ends only when every
    send is durable, so the record's offset is committed only after its effects.
    A context variable keeps each agent's record separate: agents share ``LiveEffects``.
    """
    pending: list[Awaitable[Any]] = []
    token = _PENDING_ACKS.set(pending)
    try:
        yield
    except BaseException:
        # The record will be retried; let what is in flight settle, results irrelevant.
        await asyncio.gather(*pending, return_exceptions=True)
        raise
    else:
        await asyncio.gather(*pending)
    finally:
        _PENDING_ACKS.reset(token)


class Effects(Protocol):
    """The side effects an agent may cause."""

    @property
    def users(self) -> UserRepository: ...

    def repo(self, cls: type[R]) -> R:
        """The repository ``cls`` (constructed once from the MongoDB database)."""
        ...

    async def emit(self, topic: str, envelope: Envelope) -> None:
        """Publish ``envelope`` on catalogue topic ``topic`` keyed by its aggregate key."""

    async def push(self, channel: str, envelope: Envelope) -> None:
        """Publish ``envelope`` to real-time subscribers of ``channel``."""


class LiveEffects:
    """Effects on the real broker and MongoDB, opened lazily inside the worker's loop."""

    def __init__(self, app: faust.App, settings: Settings) -> None:
        self._settings = settings
        self._topics = {
            spec.name: app.topic(
                settings.topic(spec.name),
                partitions=partitions(settings, spec.name),
                key_serializer="raw",
                value_serializer="raw",
            )
            for spec in CATALOGUE
        }
        self._client: Any = None
        self._repos: dict[type[Any], Any] = {}

    @property
    def db(self) -> AsyncDatabase[dict[str, Any]]:
        """The MongoDB database; the client is created on first use, inside the worker's loop."""
        if self._client is None:
            self._client = mongo_client(self._settings, app_name=f"{self._settings.app_id}-worker")
        return database(self._client, self._settings)

    def repo(self, cls: type[R]) -> R:
        """The repository ``cls``, built once over ``db``."""
        if cls not in self._repos:
            self._repos[cls] = cls(self.db)  # type: ignore[call-arg]
        repo: R = self._repos[cls]
        return repo

    @property
    def users(self) -> UserRepository:
        """The users repository."""
        return self.repo(UserRepository)

    async def prepare(self) -> None:
        """Create MongoDB indexes (idempotent)."""
        await ensure_indexes(self.db)

    async def emit(self, topic: str, envelope: Envelope) -> None:
        """Send keyed by the aggregate key; durable by the end of the record (see below)."""
        await self._send(topic, envelope.key, envelope)

    async def push(self, channel: str, envelope: Envelope) -> None:
        """Push records are keyed by channel so one channel's events stay in order."""
        await self._send("push", channel, envelope)

    async def _send(self, topic: str, key: str, envelope: Envelope) -> None:
        delivery = await self._topics[topic].send(
            key=key.encode(), value=envelope.encode(), headers=envelope.headers()
        )
        pending = _PENDING_ACKS.get()
        if pending is None:
            await delivery
        else:
            pending.append(delivery)

    async def aclose(self) -> None:
        """Close the MongoDB client."""
        if self._client is not None:
            await self._client.close()
            self._client = None
            self._repos.clear()
