"""MongoDB wiring (pymongo's async client) and idempotent index creation."""

from __future__ import annotations

import functools
import importlib
import logging
import pkgutil
from types import ModuleType
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

import stores
from config import Settings

log = logging.getLogger(__name__)
Document = dict[str, Any]


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
    """Create every declared index (a no-op for indexes that already exist)."""
    # Each repository module declares its indexes; creating them is idempotent.
    for module in indexed_modules():
        for collection, models in module.INDEXES.items():
            await db[collection].create_indexes(models)
    log.info("mongo indexes ready", extra={"database": db.name})
