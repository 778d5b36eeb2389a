"""The products read model's guards on the real MongoDB-wire server: replays change nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from config import Settings
from stores.mongo import ensure_indexes
from stores.products import ProductRepository

pytestmark = pytest.mark.integration


def facts(version: int, name: str) -> dict[str, Any]:
    return {
        "productId": "p-guard", "sellerId": "s", "name": name, "description": "", "category": "c",
        "price": "2.50", "currency": "USD", "status": "active", "fileIds": [],
        "version": version, "createdAt": "2024-01-01T00:00:00.000Z",
        "updatedAt": f"2024-01-0{version}T00:00:00.000Z",
    }


@pytest.fixture
async def repo(env: Settings) -> AsyncIterator[ProductRepository]:
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(env.mongo_url, tz_aware=True)
    db = mongo[env.mongo_database]
    await ensure_indexes(db)
    try:
        yield ProductRepository(db)
    finally:
        await db["products"].delete_one({"_id": "p-guard"})
        await mongo.close()


async def test_stock_that_overtakes_the_product_and_replays_converge(
    repo: ProductRepository,
) -> None:
    # Stock first (upserted, invisible), then the catalog fields, then replays of each.
    assert await repo.apply_stock("p-guard", stock=3, position=5)
    assert await repo.get("p-guard") is None
    assert await repo.project(facts(1, "One"))
    assert await repo.project(facts(2, "Two"))
    assert not await repo.project(facts(1, "One"))  # a replayed older version
    assert not await repo.apply_stock("p-guard", stock=9, position=4)  # an older offset
    assert not await repo.apply_stock("p-guard", stock=3, position=5)  # the same one again
    assert await repo.apply_rating("p-guard", average=4.0, count=1)
    assert not await repo.apply_rating("p-guard", average=4.0, count=1)

    product = await repo.get("p-guard")
    assert product is not None
    assert (product.name, product.version, product.stock) == ("Two", 2, 3)
    assert (product.rating_average, product.rating_count) == (4.0, 1)
