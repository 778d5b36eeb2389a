"""What agents do to the outside world, behind one small interface.

Agents decide; ``Effects`` carries the decision out. Production effects write
to Kafka through the Faust app's producer and to MongoDB; unit tests record
them. Every effect must be safe to repeat (at-least-once delivery).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

import faust
from pymongo.asynchronous.database import AsyncDatabase

from config import Settings
from stores.mongo import database, ensure_indexes, mongo_client
from stores.users import UserRepository
from streams.envelope import Envelope
from streams.topics import CATALOGUE

R = TypeVar("R")


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
                partitions=spec.partitions,
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
        """Send and wait for the broker's ack, so a committed offset implies a durable effect."""
        fut = await self._topics[topic].send(
            key=envelope.key.encode(), value=envelope.encode(), headers=envelope.headers()
        )
        await fut

    async def push(self, channel: str, envelope: Envelope) -> None:
        """Push records are keyed by channel so one channel's events stay in order."""
        fut = await self._topics["push"].send(
            key=channel.encode(), value=envelope.encode(), headers=envelope.headers()
        )
        await fut

    async def emit_batch(self, records: Sequence[tuple[str, str, Envelope]]) -> None:
        """Queue ``(topic, key, envelope)`` records in order, then wait for every ack at once.

        One broker round trip for the lot instead of one per record; per-partition order is
        the queueing order, as with ``emit``/``push`` one after the other.
        """
        futures = [
            await self._topics[topic].send(
                key=key.encode(), value=envelope.encode(), headers=envelope.headers()
            )
            for topic, key, envelope in records
        ]
        await asyncio.gather(*futures)

    async def aclose(self) -> None:
        """Close the MongoDB client."""
        if self._client is not None:
            await self._client.close()
            self._client = None
            self._repos.clear()
