"""The products read model's guards on the real MongoDB-wire server: replays change nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from config import Settings
from stores.mongo import ensure_indexes
from stores.product_listing import Listing
from stores.products import ProductRepository

pytestmark = pytest.mark.integration


def facts(version: int, name: str, *, product_id: str = "p-guard") -> dict[str, Any]:
    return {
        "productId": product_id, "sellerId": "s", "name": name, "description": "", "category": "c",
        "price": "2.50", "currency": "USD", "status": "active", "fileIds": [],
        "version": version, "createdAt": "2024-01-01T00:00:00.000Z",
        "updatedAt": f"2024-01-0{version}T00:00:00.000Z",
    }


@pytest.fixture
async def db(env: Settings) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(env.mongo_url, tz_aware=True)
    database = mongo[env.mongo_database]
    await ensure_indexes(database)
    try:
        yield database
    finally:
        for collection in ("products", "stock"):
            await database[collection].delete_many({"_id": {"$regex": "^p-guard"}})
        await mongo.close()


@pytest.fixture
def repo(db: AsyncDatabase[dict[str, Any]]) -> ProductRepository:
    return ProductRepository(db)


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


async def test_stock_is_kept_beside_the_product_and_joined_onto_every_read(
    repo: ProductRepository, db: AsyncDatabase[dict[str, Any]],
) -> None:
    assert await repo.project(facts(1, "One"))
    assert await repo.apply_stock("p-guard", stock=7, position=1)
    # A stock change rewrites the small stock row, never the indexed product document.
    stored = await db["products"].find_one({"_id": "p-guard"})
    assert stored is not None
    assert "stock" not in stored
    assert await db["stock"].find_one({"_id": "p-guard"}) == {
        "_id": "p-guard", "stock": 7, "position": 1}

    shown = await repo.get("p-guard")
    assert shown is not None
    assert shown.stock == 7
    rows = await repo.page(Listing(seller_id="s", fetch=5))
    assert [(row["_id"], row["stock"]) for row in rows] == [("p-guard", 7)]


async def test_a_product_stored_with_its_stock_keeps_it_until_its_next_stock_change(
    repo: ProductRepository, db: AsyncDatabase[dict[str, Any]],
) -> None:
    # What databases written before stock moved out hold: stock on the document.
    assert await repo.project(facts(1, "One"))
    await db["products"].update_one({"_id": "p-guard"}, {"$set": {"stock": 4}})
    shown = await repo.get("p-guard")
    assert shown is not None
    assert shown.stock == 4

    assert await repo.apply_stock("p-guard", stock=2, position=9)
    shown = await repo.get("p-guard")
    assert shown is not None
    assert shown.stock == 2


async def test_the_stock_shown_is_the_last_decided_not_the_last_sent(
    repo: ProductRepository,
) -> None:
    # The inventory decided 10 (#1), 9 (#2), 8 (#3); #2 was sent again after #3, at a later
    # offset, because its command came again (a saga repeating its plan after a crash).
    assert await repo.apply_stock("p-seq", stock=10, position=20, sequence=1)
    assert await repo.apply_stock("p-seq", stock=9, position=21, sequence=2)
    assert await repo.apply_stock("p-seq", stock=8, position=22, sequence=3)
    assert not await repo.apply_stock("p-seq", stock=9, position=23, sequence=2)
    # A change from before the numbering (no sequence) never overrides a numbered one.
    assert not await repo.apply_stock("p-seq", stock=7, position=24)
    assert await repo.project(facts(1, "Seq", product_id="p-seq"))
    shown = await repo.get("p-seq")
    assert shown is not None
    assert shown.stock == 8
