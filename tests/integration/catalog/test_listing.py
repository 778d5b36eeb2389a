"""Browsing and search on the real MongoDB-wire server: filters, sorts, keyset cursors, ranking."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.catalog.conftest import People
from tests.support.catalog import Client, Headers, new_product, signed_up
from tests.support.catalog import list_products as listing

pytestmark = pytest.mark.integration


def names(page: dict[str, Any]) -> list[str]:
    return [p["name"] for p in page["data"]]


async def walk(client: Client, cursor: str | None = None, **query: str) -> list[str]:
    """Every page of a listing (from ``cursor``), following nextCursor."""
    seen: list[str] = []
    while True:
        page = await listing(client, **query, **({"cursor": cursor} if cursor else {}))
        seen += names(page)
        cursor = page["pagination"]["nextCursor"]
        if cursor is None:
            return seen


async def test_multi_key_sort_pages_stay_stable_while_products_are_added(
    client: Client, people: People
) -> None:
    seller_id, seller = await signed_up(client, "shelf@example.com", "seller")
    for name, price, category in [("A", "5", "Tools"), ("B", "3", "Toys"), ("C", "3", "Tools"),
                                  ("D", "8", "Toys"), ("E", "1", "Tools"), ("F", "3", "Tools")]:
        await new_product(client, seller, name, price=price, category=category)
    query = {"sellerId": seller_id, "sort": "price,-createdAt", "limit": "2"}

    first = await listing(client, **query)
    assert names(first) == ["E", "F"]
    assert first["pagination"] == {"limit": 2, "hasMore": True,
                                   "nextCursor": first["pagination"]["nextCursor"]}
    # Added between pages: one sorts before the position already served, one after it.
    await new_product(client, seller, "early", price="2")
    await new_product(client, seller, "late", price="9")
    rest = await walk(client, **query, cursor=first["pagination"]["nextCursor"])
    assert rest == ["C", "B", "A", "D", "late"]  # nothing repeated, nothing shifted

    by_name = await walk(client, sellerId=seller_id, sort="-price,name", limit="3")
    assert by_name == ["late", "D", "A", "B", "C", "F", "early", "E"]
    ranged = await listing(client, sellerId=seller_id, minPrice="2.5", maxPrice="5",
                           category="tools", sort="price,name")
    assert names(ranged) == ["C", "F", "A"]


async def test_bad_and_foreign_cursors_are_refused(client: Client) -> None:
    garbage = await client.get("/v1/products", params={"cursor": "not-a-cursor"})
    assert garbage.status == 400
    assert (await garbage.json())["code"] == "INVALID_CURSOR"
    _, seller = await signed_up(client, "cursor@example.com", "seller")
    for name in ("x1", "x2"):
        await new_product(client, seller, name)
    page = await listing(client, sort="price", limit="1")
    cursor = page["pagination"]["nextCursor"]
    foreign = await client.get("/v1/products", params={"sort": "name", "cursor": cursor})
    assert foreign.status == 400
    assert (await foreign.json())["code"] == "INVALID_CURSOR"
    bad = await client.get("/v1/products", params={"sort": "stock", "minPrice": "cheap"})
    assert bad.status == 422
    assert {e["field"] for e in (await bad.json())["errors"]} == {"sort", "minPrice"}


async def search(client: Client, seller_id: str, q: str, **extra: str) -> list[str]:
    return names(await listing(client, sellerId=seller_id, q=q, **extra))


async def stocked(client: Client, seller: Headers) -> None:
    for name, category, description in [
        ("Wireless Headphones", "Audio", "Noise cancelling, 30 hours"),
        ("Audio Cable", "Accessories", "Works with headphones and speakers"),
        ("Headrest Pillow", "Travel", "Soft memory foam"),
        ("Crème Brûlée Torch", "Kitchen", "Caramelise sugar like a chef"),
    ]:
        await new_product(client, seller, name, category=category, description=description)


async def test_search_ranks_name_over_category_over_description(client: Client) -> None:
    seller_id, seller = await signed_up(client, "search@example.com", "seller")
    await stocked(client, seller)

    assert await search(client, seller_id, "headphones") == ["Wireless Headphones", "Audio Cable"]
    # Every query word must match; the name match outranks name+description.
    assert await search(client, seller_id, "audio headphones") == [
        "Wireless Headphones", "Audio Cable"]
    assert await search(client, seller_id, "headphones zebra") == []
    # Prefixes: "head" is in two names (a tie, broken by newest first) and one description.
    assert await search(client, seller_id, "head") == [
        "Headrest Pillow", "Wireless Headphones", "Audio Cable"]
    assert await search(client, seller_id, "head", sort="name") == [
        "Headrest Pillow", "Wireless Headphones", "Audio Cable"]
    # Accents and case fold away on both sides.
    assert await search(client, seller_id, "CREME brulee") == ["Crème Brûlée Torch"]
    assert await search(client, seller_id, "crème") == ["Crème Brûlée Torch"]


async def test_search_results_page_with_their_own_cursor(client: Client) -> None:
    seller_id, seller = await signed_up(client, "pages@example.com", "seller")
    await stocked(client, seller)
    assert await walk(client, sellerId=seller_id, q="head", limit="1") == [
        "Headrest Pillow", "Wireless Headphones", "Audio Cable"]
    page = await listing(client, sellerId=seller_id, q="head", limit="1")
    other = await client.get("/v1/products", params={
        "sellerId": seller_id, "q": "audio", "cursor": page["pagination"]["nextCursor"]})
    assert other.status == 400
