"""Reviews: only buyers of a completed order, one each, and the rating they lead to."""

from __future__ import annotations

import pytest

from config import Settings
from tests.integration.catalog.conftest import People
from tests.support.catalog import Client, completed_order, get_product, new_product

pytestmark = pytest.mark.integration


async def test_reviews_need_a_completed_purchase_and_are_one_per_buyer(
    client: Client, env: Settings, people: People
) -> None:
    product = await new_product(client, people["seller"][1], "Teapot")
    pid = product["productId"]
    path = f"/v1/products/{pid}/reviews"
    buyer_id, buyer = people["buyer"]
    other_id, other = people["buyer2"]

    early = await client.post(path, json={"rating": 5, "comment": "great"}, headers=buyer)
    assert early.status == 403
    assert (await early.json())["code"] == "NOT_A_BUYER"

    await completed_order(env, "o-1", buyer_id, "some-other-product", pid)
    first = await client.post(path, json={"rating": 5, "comment": "great"}, headers=buyer)
    assert first.status == 201, await first.text()
    review = await first.json()
    assert (review["buyerId"], review["rating"], review["comment"]) == (buyer_id, 5, "great")
    again = await client.post(path, json={"rating": 1, "comment": "changed"}, headers=buyer)
    assert again.status == 409
    assert (await again.json())["code"] == "REVIEW_EXISTS"

    await completed_order(env, "o-2", other_id, pid)
    second = await client.post(path, json={"rating": 2, "comment": "meh"}, headers=other)
    assert second.status == 201
    assert (await get_product(client, pid))["rating"] == {"average": 3.5, "count": 2}

    page = await client.get(path, params={"limit": "1"})
    body = await page.json()
    assert [r["comment"] for r in body["data"]] == ["meh"]
    rest = await client.get(path, params={"limit": "1", "cursor": body["pagination"]["nextCursor"]})
    rest_body = await rest.json()
    assert [r["comment"] for r in rest_body["data"]] == ["great"]
    assert rest_body["pagination"]["hasMore"] is False


async def test_review_input_and_unknown_products(client: Client, people: People) -> None:
    buyer = people["buyer"][1]
    missing = await client.post(
        "/v1/products/nope/reviews", json={"rating": 4, "comment": "?"}, headers=buyer
    )
    assert missing.status == 404
    assert (await client.get("/v1/products/nope/reviews")).status == 404
    product = await new_product(client, people["seller"][1], "Kettle")
    invalid = await client.post(
        f"/v1/products/{product['productId']}/reviews", json={"rating": 6}, headers=buyer
    )
    assert invalid.status == 422
    assert {e["field"] for e in (await invalid.json())["errors"]} == {"rating", "comment"}
    anonymous = await client.post(
        f"/v1/products/{product['productId']}/reviews", json={"rating": 4, "comment": "x"}
    )
    assert anonymous.status == 401
