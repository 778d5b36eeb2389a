"""What agents do to the outside world, behind one small interface.

Agents decide; ``Effects`` carries the decision out. Production effects write
to Kafka through the Faust app's producer and to MongoDB; unit tests record
them. Every effect must be safe to repeat (at-least-once delivery).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar

import faust
from pymongo.asynchronous.database import AsyncDatabase

from config import Settings
from stores.mongo import HeldWrites, database, ensure_indexes, mongo_client, writes_held
from stores.users import UserRepository
from streams.envelope import Envelope
from streams.topics import CATALOGUE

R = TypeVar("R")
_HELD: ContextVar[Held | None] = ContextVar("held_effects", default=None)


@dataclasses.dataclass(slots=True)
class Send:
    """A record to produce: the producer, the topic's full name, the record's key and value."""

    producer: Any
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


@dataclasses.dataclass(slots=True)
class Held:
    """One record's effects, held to be committed (with other records') after it is decided."""

    sends: list[Send] = dataclasses.field(default_factory=list)
    writes: HeldWrites = dataclasses.field(default_factory=HeldWrites)
    # The broker's acks of the changelog records of the record's table changes.
    changelog: list[asyncio.Future[Any]] = dataclasses.field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.sends) or len(self.writes) > 0 or bool(self.changelog)


@contextlib.contextmanager
def held(changelog: list[asyncio.Future[Any]] | None = None) -> Iterator[Held]:
    """Within the block, sends and repository writes are held in the yielded ``Held``.

    Carry them out with :func:`commit`. A context variable keeps each record's effects
    apart (agents share ``LiveEffects``; a record's task has its own context).
    ``changelog``: the record's changelog records so far, kept across its attempts: a retry
    finds its table changes made and makes none, yet must still wait for them.
    """
    effects = Held() if changelog is None else Held(changelog=changelog)
    token = _HELD.set(effects)
    try:
        with writes_held(effects.writes):
            yield effects
    finally:
        _HELD.reset(token)


def hold_changelog(sent: asyncio.Future[Any]) -> None:
    """Make the current record's commit wait for ``sent``, a table change's changelog record.

    Outside a record whose effects are held (a timer, the changelog repair) nothing waits.
    """
    holding = _HELD.get()
    if holding is not None:
        holding.changelog.append(sent)


async def commit(records: Sequence[Held]) -> None:
    """Carry out the held effects of ``records``; returns once every one is durable.

    MongoDB first (one unordered ``bulk_write`` per collection), then every record is
    handed to the producer (which batches them per partition, in order) and their acks
    are awaited together: a GET after a command's answer sees the read model, and the
    caller acks the records' offsets only after their effects are durable.

    Their table changes count among those effects: Faust sends a change's changelog record
    from its own buffer, and its offset commit stops waiting for that buffer after 0.1 s
    without a send, so a record could be committed before its table change was on the
    changelog; a worker killed then and restored from the changelogs alone (local state
    lost, a partition moved) lost the change for good, the record not being delivered
    again (what ``tests/chaos/test_worker_kill.py`` does: a kill under load, then a
    restore without local state).
    """
    writes = HeldWrites.merged(record.writes for record in records)
    if len(writes):
        await writes.flush()
    deliveries = [
        # Faust's producer, not ``Topic.send``: our records are bytes already, and the
        # topic layer's per-record futures and sensors were a tenth of the worker's time.
        await send.producer.send(send.topic, send.key, send.value, None, None, send.headers)
        for record in records for send in record.sends
    ]
    # Shielded: a cancelled commit must not cancel Faust's own futures (it sets their
    # results when the acks come, and keeps its changelog offsets by them).
    changelogs = [asyncio.shield(sent) for record in records for sent in record.changelog]
    await asyncio.gather(*deliveries, *changelogs)


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
        self._app = app
        self._settings = settings
        self._names = {spec.name: settings.topic(spec.name) for spec in CATALOGUE}
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
        """Send keyed by the aggregate key: at once, or held with the record's effects."""
        await self._send(topic, envelope.key, envelope)

    async def push(self, channel: str, envelope: Envelope) -> None:
        """Push records are keyed by channel so one channel's events stay in order."""
        await self._send("push", channel, envelope)

    async def _send(self, topic: str, key: str, envelope: Envelope) -> None:
        send = Send(self._app.producer, self._names[topic], key.encode(), envelope.encode(),
                    envelope.headers())
        holding = _HELD.get()
        if holding is None:
            await commit([Held(sends=[send])])
        else:
            holding.sends.append(send)

    async def aclose(self) -> None:
        """Close the MongoDB client."""
        if self._client is not None:
            await self._client.close()
            self._client = None
            self._repos.clear()
