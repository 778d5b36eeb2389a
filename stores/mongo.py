"""MongoDB wiring (pymongo's async client) and idempotent index creation."""

from __future__ import annotations

import logging
from types import ModuleType
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from config import Settings
from stores import analytics as analytics_store
from stores import audit, file_content, file_usage, files, notifications, users
from stores import orders as orders_store
from stores import products as products_store
from stores import reviews as reviews_store

log = logging.getLogger(__name__)
Document = dict[str, Any]
# Each repository module declares its indexes; creating them is idempotent.
INDEXED_MODULES: tuple[ModuleType, ...] = (
    users, audit, notifications, files, file_usage, file_content,
)
INDEXED_MODULES += (orders_store,)
INDEXED_MODULES += (products_store, reviews_store)
INDEXED_MODULES += (analytics_store,)


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
    for module in INDEXED_MODULES:
        for collection, models in module.INDEXES.items():
            await db[collection].create_indexes(models)
    log.info("mongo indexes ready", extra={"database": db.name})
