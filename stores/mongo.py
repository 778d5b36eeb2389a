"""MongoDB wiring (pymongo's async client), idempotent index creation and held writes.

A repository writes through :func:`update_one`: at once, or, inside
:func:`writes_held`, into a :class:`HeldWrites` that the agent runtime flushes as one
unordered ``bulk_write`` per collection for many records at a time
(``agents.runtime.commit``). Every held write is an idempotent upsert guarded by a
version or a position, so the order of writes within one flush does not matter: an
older write that lands after a newer one changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import logging
import pkgutil
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from types import ModuleType
from typing import Any

from pymongo import AsyncMongoClient, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

import stores
from config import Settings

log = logging.getLogger(__name__)
Document = dict[str, Any]
# A guarded upsert whose guard excluded the stored document collides with its _id: the
# stored version is newer, so the write is (correctly) not applied.
DUPLICATE_KEY = 11000
_HELD: ContextVar[HeldWrites | None] = ContextVar("held_mongo_writes", default=None)


class HeldWrites:
    """MongoDB writes held back to be flushed together: one ``bulk_write`` per collection."""

    __slots__ = ("_ops",)

    def __init__(self) -> None:
        self._ops: dict[str, tuple[AsyncCollection[Document], list[UpdateOne]]] = {}

    def __len__(self) -> int:
        return sum(len(ops) for _, ops in self._ops.values())

    def add(self, collection: AsyncCollection[Document], op: UpdateOne) -> None:
        """Hold ``op`` on ``collection``."""
        held = self._ops.get(collection.full_name)
        if held is None:
            self._ops[collection.full_name] = (collection, [op])
        else:
            held[1].append(op)

    @classmethod
    def merged(cls, parts: Iterable[HeldWrites]) -> HeldWrites:
        """All writes of ``parts``, in order, per collection."""
        out = cls()
        for part in parts:
            for collection, ops in part._ops.values():
                for op in ops:
                    out.add(collection, op)
        return out

    async def flush(self) -> None:
        """Apply every held write: the collections concurrently, each in one round trip."""
        # Every collection's outcome is awaited before the first error is raised: the caller
        # retries them all, and none may still be running then.
        outcomes = await asyncio.gather(
            *(_bulk(collection, ops) for collection, ops in self._ops.values()),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome


async def _bulk(collection: AsyncCollection[Document], ops: list[UpdateOne]) -> None:
    try:
        await collection.bulk_write(ops, ordered=False)
    except BulkWriteError as exc:
        # Unordered: everything else was applied; only a guard's duplicate key is expected.
        errors: list[Mapping[str, Any]] = exc.details.get("writeErrors", [])
        if any(error.get("code") != DUPLICATE_KEY for error in errors) or (
            exc.details.get("writeConcernErrors")
        ):
            raise


@contextlib.contextmanager
def writes_held(held: HeldWrites) -> Iterator[HeldWrites]:
    """Within the block, :func:`update_one` holds its writes in ``held`` instead of writing."""
    token = _HELD.set(held)
    try:
        yield held
    finally:
        _HELD.reset(token)


async def update_one(
    collection: AsyncCollection[Document],
    query: Mapping[str, Any],
    update: Mapping[str, Any],
    *,
    upsert: bool = False,
) -> bool:
    """``update_one``, or held for the flush when writes are held (see the module docstring).

    True if the write changed or inserted a document; a held write counts as applied
    (the flush applies it, or its guard finds a newer document: both end the same way).
    A guarded upsert that loses its guard to a newer document is not applied: False.
    """
    held = _HELD.get()
    if held is not None:
        held.add(collection, UpdateOne(dict(query), dict(update), upsert=upsert))
        return True
    try:
        result = await collection.update_one(query, update, upsert=upsert)
    except DuplicateKeyError:
        return False
    return result.upserted_id is not None or result.modified_count > 0


@functools.cache
def indexed_modules() -> tuple[ModuleType, ...]:
    """Every module of the ``stores`` package that declares ``INDEXES``.

    Found by scanning the package, so a new repository module needs no edit here.
    Scanned on first use, not at import: a store module may import this one.
    """
    found = (
        importlib.import_module(f"{stores.__name__}.{info.name}")
        for info in pkgutil.iter_modules(stores.__path__)
    )
    return tuple(module for module in found if hasattr(module, "INDEXES"))


def mongo_client(settings: Settings, *, app_name: str) -> AsyncMongoClient[Document]:
    """A client for the configured URL; it connects lazily, on first use."""
    return AsyncMongoClient(
        settings.mongo_url,
        appname=app_name,
        tz_aware=True,
        serverSelectionTimeoutMS=5000,
        uuidRepresentation="standard",
    )


def database(client: AsyncMongoClient[Document], settings: Settings) -> AsyncDatabase[Document]:
    """The Mercato database named by the URL."""
    return client[settings.mongo_database]


async def ensure_indexes(db: AsyncDatabase[Document]) -> None:
    """Create every declared index and drop retired ones (idempotent both ways)."""
    # Each repository module declares its indexes, and may name the ones it no longer
    # wants (RETIRED_INDEXES): an index nobody queries still costs every write.
    for module in indexed_modules():
        for collection, models in module.INDEXES.items():
            await db[collection].create_indexes(models)
        for collection, names in getattr(module, "RETIRED_INDEXES", {}).items():
            existing = await (await db[collection].list_indexes()).to_list()
            for name in set(names) & {index["name"] for index in existing}:
                await db[collection].drop_index(name)
    log.info("mongo indexes ready", extra={"database": db.name})
