"""Fixtures shared by the integration modules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from config import Settings
from stores.mongo import ensure_indexes


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    """The test's own MongoDB database on the embedded server, indexed, dropped afterwards."""
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url, tz_aware=True)
    database = mongo[settings.mongo_database]
    await ensure_indexes(database)
    try:
        yield database
    finally:
        await mongo.drop_database(settings.mongo_database)
        await mongo.close()
