"""Search suggestions on the real stack: the catalog agent indexes, the gateway answers."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from config import Settings
from stores.products import Product, category_key
from stores.suggestions import COLLECTION, SuggestionRepository
from tests.integration.catalog.conftest import People
from tests.support.catalog import Client, new_product
from tests.support.files import mongo

pytestmark = pytest.mark.integration


@pytest.fixture
async def database(env: Settings) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    """The package's database."""
    client, db = mongo(env)
    yield db
    await client.close()


@pytest.fixture
def suggestions(database: AsyncDatabase[dict[str, Any]]) -> SuggestionRepository:
    """The suggestion index of the package's database, to record popularity as analytics do."""
    return SuggestionRepository(database)


async def suggest(client: Client, q: str, **query: str) -> list[dict[str, Any]]:
    """GET /v1/search/suggest; it must succeed."""
    response = await client.get("/v1/search/suggest", params={"q": q, **query})
    assert response.status == 200, await response.text()
    return list((await response.json())["suggestions"])


def texts(found: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(s["kind"], s["text"]) for s in found]


async def test_prefixes_of_any_word_ranked_by_popularity(
    client: Client, people: People, suggestions: SuggestionRepository
) -> None:
    _, seller = people["seller"]
    laptop = await new_product(client, seller, "Quokka Laptop Pro", category="Quokkatronics")
    book = await new_product(client, seller, "Budget Quokkabook", category="Quokkatronics")
    mouse = await new_product(client, seller, "Quokka Mouse", category="Quokka Gear")
    old = await new_product(client, seller, "Quokka Relic", category="Quokka Attic")
    gone = await client.delete(f"/v1/products/{old['productId']}", headers=seller)
    assert gone.status == 204
    hour = 3_600_000 * 500_000
    await suggestions.record_popularity(hour, {
        mouse["productId"]: {"orders": 3, "views": 0},
        laptop["productId"]: {"orders": 0, "views": 5},
    })

    found = await suggest(client, "quok")
    assert texts(found) == [
        ("category", "Quokkatronics"), ("category", "Quokka Gear"),  # by active products
        ("product", "Quokka Mouse"), ("product", "Quokka Laptop Pro"),
        ("product", "Budget Quokkabook"),  # by its second word; the archived one is left out
    ]
    assert found[2]["productId"] == mouse["productId"]
    assert "productId" not in found[0]
    # A later word, several words, and any case or accents.
    assert texts(await suggest(client, "LAPT")) == [("product", "Quokka Laptop Pro")]
    assert texts(await suggest(client, "quokka lap")) == [("product", "Quokka Laptop Pro")]
    assert texts(await suggest(client, "laptop p")) == [("product", "Quokka Laptop Pro")]
    assert texts(await suggest(client, "Quökka  M")) == [("product", "Quokka Mouse")]
    assert await suggest(client, "quokkatron", limit="3") == []  # no room for categories
    assert texts(await suggest(client, "quokkatron", limit="4")) == [
        ("category", "Quokkatronics")]
    # Views moved ahead of orders: the new ranking shows once the cache entry is dropped.
    await suggestions.record_popularity(hour + 3_600_000, {book["productId"]: {"views": 99}})
    renamed = await client.patch(
        f"/v1/products/{laptop['productId']}", json={"name": "Quokka Notebook"},
        headers={**seller, "If-Match": laptop["_etag"]},
    )
    assert renamed.status == 200, await renamed.text()
    assert texts(await suggest(client, "quokka", limit="3")) == [
        ("product", "Budget Quokkabook"), ("product", "Quokka Mouse"),
        ("product", "Quokka Notebook")]
    assert await suggest(client, "quokka lap") == []
    assert texts(await suggest(client, "quokkatron", limit="4")) == [
        ("category", "Quokkatronics")]


async def test_limits_validation_and_caching(client: Client, people: People) -> None:
    _, seller = people["seller"]
    for n in range(4):
        await new_product(client, seller, f"Wombat Item {n}", category="Wombats")
    assert len(await suggest(client, "wombat", limit="2")) == 2
    assert len(await suggest(client, "wombat", limit="20")) == 5  # 4 products, 1 category
    assert await suggest(client, "!!!") == []  # no word in it: nothing to look up
    for query in ({}, {"q": ""}, {"q": "w" * 65}, {"q": "w", "limit": "0"},
                  {"q": "w", "limit": "21"}, {"q": "w", "limit": "x"},
                  {"q": "w", "limit": "\u00b2"}):  # a digit to str.isdigit(), not to int()
        refused = await client.get("/v1/search/suggest", params=query)
        assert refused.status == 422, query
        assert (await refused.json())["code"] == "VALIDATION_ERROR"
    first = await client.get("/v1/search/suggest", params={"q": "wom"})
    assert first.headers["Cache-Control"].startswith("public")
    again = await client.get("/v1/search/suggest", params={"q": "wom"},
                             headers={"If-None-Match": first.headers["ETag"]})
    assert again.status == 304


async def test_recording_popularity_remembers_one_hour_per_product(
    suggestions: SuggestionRepository,
) -> None:
    hour = 3_600_000 * 600_000
    a, b = f"p-{uuid.uuid4().hex}", f"p-{uuid.uuid4().hex}"  # no product of another test
    for n in range(5):
        assert await suggestions.record_popularity(hour + n * 3_600_000,
                                                   {a: {"views": n}, b: {"views": 1}}) == 2
    # The analytics worker runs for months: what it remembers stays one hour per product.
    assert len(suggestions._recorded) == 2
    # The latest window emitted again changes nothing; a revised older one is set again.
    assert await suggestions.record_popularity(hour + 4 * 3_600_000, {a: {"views": 4}}) == 0
    assert await suggestions.record_popularity(hour, {a: {"views": 7}}) == 1


def _product(category: str, *, version: int, status: str = "active") -> Product:
    at = datetime(2026, 12, 1, tzinfo=UTC)
    return Product(
        product_id=f"p-{uuid.uuid4().hex}", seller_id="u-s", name="Vole Lamp",
        description="", category=category, price="1.00", currency="EUR", stock=0,
        status=status, file_ids=(), rating_average=0.0, rating_count=0, created_at=at,
        updated_at=at, version=version,
    )


async def test_a_category_counts_its_active_products_in_a_bounded_document(
    database: AsyncDatabase[dict[str, Any]], suggestions: SuggestionRepository,
) -> None:
    tag = uuid.uuid4().hex[:8]
    a, b, c = (f"Vole {name} {tag}" for name in ("Attic", "Barn", "Cellar"))

    async def counted(category: str) -> int:
        doc = await database[COLLECTION].find_one({"_id": f"c|v|{category_key(category)}"})
        assert doc is None or "members" not in doc  # a counter, not a list of products
        return 0 if doc is None else int(doc["popularity"])

    lamp, rug = _product(a, version=1), _product(a, version=1)
    for product in (lamp, lamp, rug):  # the lamp's index redelivered: counted once
        await suggestions.index(product)
    assert (await counted(a), await counted(b)) == (2, 0)
    lamp = dataclasses.replace(lamp, category=b, version=2)
    await suggestions.index(lamp)
    await suggestions.index(lamp)
    assert (await counted(a), await counted(b)) == (1, 1)
    await suggestions.index(dataclasses.replace(rug, status="archived", version=2))
    assert await counted(a) == 0
    # A crash after the counters moved but before the membership was written: the
    # redelivered move finds its id on the counters and moves nothing twice.
    membership = await database[COLLECTION].find_one({"_id": f"m|{lamp.product_id}"})
    lamp = dataclasses.replace(lamp, category=c, version=3)
    await suggestions.index(lamp)
    await database[COLLECTION].replace_one({"_id": f"m|{lamp.product_id}"}, membership or {})
    await suggestions.index(lamp)
    assert (await counted(b), await counted(c)) == (0, 1)
    # Products indexed at once into a category none created yet: each counts.
    d = f"Vole Den {tag}"
    await asyncio.gather(*(suggestions.index(_product(d, version=1)) for _ in range(8)))
    assert await counted(d) == 8
