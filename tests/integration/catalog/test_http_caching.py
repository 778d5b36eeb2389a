"""HTTP caching, sparse fieldsets, ?include=reviews and the shared response cache (#17).

Against the package's real worker, with a second in-process gateway on the same Redis,
MongoDB and broker: the cache is shared, and each gateway's push hub drops entries.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from config import Settings
from gateway.cache.keys import RESPONSE_CACHE
from tests.integration.catalog.conftest import People
from tests.support.catalog import Client, completed_order, get_product, new_product
from tests.support.contract import unchecked
from tests.support.files import eventually
from tests.support.http import gateway_client

pytestmark = pytest.mark.integration

PRODUCT_CONTROL = "public, max-age=300, stale-while-revalidate=30"
LISTING_CONTROL = "public, max-age=60, stale-while-revalidate=30"


@pytest.fixture
async def other(env: Settings) -> AsyncIterator[Client]:
    """A second gateway: another app, its own push hub, the same stores and cache."""
    async with gateway_client(env) as c:
        yield c


async def test_public_reads_carry_validators_and_answer_304(
    client: Client, people: People
) -> None:
    seller_id, seller = people["seller"]
    pid = (await new_product(client, seller, "Cached Lamp", stock=2))["productId"]
    shown = await eventually(lambda: get_product(client, pid), ok=lambda p: p["stock"] == 2)
    path = f"/v1/products/{pid}"
    first = await client.get(path)
    assert first.headers["Cache-Control"] == PRODUCT_CONTROL
    assert first.headers["ETag"] == shown["_etag"]
    again = await client.get(path, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status == 304
    assert (again.headers["ETag"], again.headers["Cache-Control"]) == (
        first.headers["ETag"], PRODUCT_CONTROL
    )
    assert await again.read() == b""

    for url, control in [
        (f"/v1/products?sellerId={seller_id}", LISTING_CONTROL),
        (f"/v1/products/{pid}/reviews", "public, max-age=60, stale-while-revalidate=30"),
    ]:
        page = await client.get(url)
        assert page.status == 200
        assert page.headers["Cache-Control"] == control
        tag = page.headers["ETag"]
        assert (await client.get(url, headers={"If-None-Match": f'"x", {tag}'})).status == 304
        assert (await client.get(url, headers={"If-None-Match": '"other"'})).status == 200

    # Private reads are the caller's alone: no cache may keep them.
    me = await client.get("/v1/users/me", headers=seller)
    assert me.headers["Cache-Control"] == "private, no-store"


async def test_a_stock_change_changes_the_etag_and_if_match_still_takes_it(
    client: Client, people: People
) -> None:
    seller = people["seller"][1]
    pid = (await new_product(client, seller, "Stocked Lamp", stock=1))["productId"]
    before = await eventually(lambda: get_product(client, pid), ok=lambda p: p["stock"] == 1)
    changed = await client.patch(
        f"/v1/products/{pid}/stock", json={"quantityChange": 4}, headers=seller
    )
    assert changed.status == 200, await changed.text()
    after = await eventually(lambda: get_product(client, pid), ok=lambda p: p["stock"] == 5)
    # Same catalog version, other stock: a copy with the old stock is not "not modified".
    assert after["_etag"] != before["_etag"]
    stale = await client.get(f"/v1/products/{pid}", headers={"If-None-Match": before["_etag"]})
    assert stale.status == 200
    # The read's tag is the one If-Match takes: stock is not the seller's edit to lose.
    patched = await client.patch(
        f"/v1/products/{pid}", json={"name": "Stocked Lamp 2"},
        headers={**seller, "If-Match": before["_etag"]},
    )
    assert patched.status == 200, await patched.text()
    assert patched.headers["ETag"] == (await get_product(client, pid))["_etag"]


async def test_a_patch_is_seen_at_once_on_either_gateway(
    client: Client, other: Client, people: People
) -> None:
    seller = people["seller"][1]
    pid = (await new_product(client, seller, "Shared Desk", price="20.00"))["productId"]
    path = f"/v1/products/{pid}"
    for gateway in (client, other, client, other):  # both warm, the second read a hit
        assert (await get_product(gateway, pid))["price"] == "20.00"
    cache = other.app[RESPONSE_CACHE]
    hits = cache.hits
    assert (await get_product(other, pid))["price"] == "20.00"
    assert cache.hits == hits + 1
    tag = (await get_product(client, pid))["_etag"]

    patched = await client.patch(
        path, json={"price": "25.00"}, headers={**seller, "If-Match": tag}
    )
    assert patched.status == 200, await patched.text()
    new_tag = patched.headers["ETag"]
    assert new_tag != tag
    # No waiting: the gateway that made the change dropped the shared entries first.
    for gateway in (other, client):
        shown = await get_product(gateway, pid)
        assert (shown["price"], shown["_etag"]) == ("25.00", new_tag)
        old = await gateway.get(path, headers={"If-None-Match": tag})
        assert old.status == 200
    listed = await other.get("/v1/products", params={"q": "Shared Desk"})
    assert [p["price"] for p in (await listed.json())["data"]] == ["25.00"]


async def test_an_event_drops_the_entries_of_every_gateway_before_it_is_pushed(
    client: Client, other: Client, env: Settings, people: People
) -> None:
    """The bound: once a change's event is out, no gateway serves the old version."""
    seller = people["seller"][1]
    buyer_id, buyer = people["buyer"]
    pid = (await new_product(client, seller, "Rated Chair"))["productId"]
    for gateway in (client, other, client, other):
        assert (await get_product(gateway, pid))["rating"]["count"] == 0
    await completed_order(env, f"o-cache-{pid}", buyer_id, pid)

    # A review reaches the read model through the agent; only its push record (not the
    # gateway that took it) drops the product's entries. Watch it through the other one.
    async with other.ws_connect("/v1/ws", headers=seller) as ws:
        await ws.send_json({"type": "subscribe", "channel": f"product:{pid}"})
        assert (await ws.receive_json(timeout=10))["type"] == "subscribed"
        posted = await client.post(
            f"/v1/products/{pid}/reviews", json={"rating": 4, "comment": "sturdy"},
            headers=buyer,
        )
        assert posted.status == 201, await posted.text()
        frame = await _event(ws)
        assert frame["channel"] == f"product:{pid}"
    for gateway in (other, client):
        assert (await get_product(gateway, pid))["rating"] == {"average": 4.0, "count": 1}


async def _event(ws: Any) -> dict[str, Any]:
    while True:
        frame: dict[str, Any] = await ws.receive_json(timeout=20)
        if frame["type"] == "event":
            return frame


async def test_concurrent_misses_share_reads_of_the_read_model(
    client: Client, people: People
) -> None:
    pid = (await new_product(client, people["seller"][1], "Busy Stool"))["productId"]
    cache = client.app[RESPONSE_CACHE]
    fills = cache.fills
    answers = await asyncio.gather(
        *(client.get(f"/v1/products/{pid}") for _ in range(20))
    )
    assert {a.status for a in answers} == {200}
    assert len({a.headers["ETag"] for a in answers}) == 1
    # Misses under way together share one read; one whose miss was answered before the
    # entry landed but that looks after its fill ended reads again (a round trip's window).
    assert 1 <= cache.fills - fills <= 5


async def test_sparse_fieldsets_return_exactly_the_asked_fields(
    client: Client, people: People
) -> None:
    seller_id, seller = people["seller"]
    pid = (await new_product(client, seller, "Sparse Shelf"))["productId"]
    one = await client.get(f"/v1/products/{pid}", params={"fields": "productId,name,price"})
    assert await one.json() == {"productId": pid, "name": "Sparse Shelf", "price": "10.00"}
    page = await client.get(
        "/v1/products", params={"sellerId": seller_id, "fields": "productId,rating", "limit": "2"}
    )
    body = await page.json()
    assert body["data"]
    assert all(set(item) == {"productId", "rating"} for item in body["data"])
    assert set(body["pagination"]) == {"limit", "hasMore", "nextCursor"}
    # The whole answer stays what it was, cached apart from the trimmed one.
    assert "description" in await get_product(client, pid)

    me = await client.get("/v1/users/me", params={"fields": "userId,email"}, headers=seller)
    assert await me.json() == {"userId": seller_id, "email": "seller@example.com"}

    for url, headers in [
        (f"/v1/products/{pid}", {}), ("/v1/products", {}), ("/v1/users/me", seller),
        ("/v1/orders", seller), ("/v1/files", seller),
    ]:
        bad = await client.get(url, params={"fields": "productId,nope"}, headers=headers)
        assert bad.status == 422, url
        problem = await bad.json()
        assert problem["code"] == "VALIDATION_ERROR"
        assert [e["field"] for e in problem["errors"]] == ["fields"]


async def test_sparse_fieldsets_on_orders_and_files(client: Client, people: People) -> None:
    buyer = people["buyer2"][1]
    orders = await client.get("/v1/orders", params={"fields": "orderId,status"}, headers=buyer)
    assert orders.status == 200
    assert all(set(o) == {"orderId", "status"} for o in (await orders.json())["data"])
    files = await client.get("/v1/files", params={"fields": "fileId"}, headers=buyer)
    assert files.status == 200
    assert all(set(f) == {"fileId"} for f in (await files.json())["data"])


async def test_include_reviews_gives_the_latest_three_in_one_answer(
    client: Client, env: Settings, people: People
) -> None:
    pid = (await new_product(client, people["seller"][1], "Reviewed Mug"))["productId"]
    for i, (buyer_id, headers) in enumerate([people["buyer"], people["buyer2"]]):
        await completed_order(env, f"o-inc-{pid}-{i}", buyer_id, pid)
        posted = await client.post(
            f"/v1/products/{pid}/reviews", json={"rating": 5 - i, "comment": f"c{i}"},
            headers=headers,
        )
        assert posted.status == 201, await posted.text()
    view = await eventually(
        lambda: _included(client, pid), ok=lambda v: v["rating"]["count"] == 2
    )
    assert [r["comment"] for r in view["reviews"]] == ["c1", "c0"]
    assert view["rating"] == {"average": 4.5, "count": 2}
    assert "reviews" not in await get_product(client, pid)
    bad = await client.get(f"/v1/products/{pid}", params={"include": "files"})
    assert (bad.status, (await bad.json())["errors"][0]["field"]) == (422, "include")


async def _included(client: Client, pid: str) -> dict[str, Any]:
    response = await client.get(f"/v1/products/{pid}", params={"include": "reviews"})
    assert response.status == 200
    assert response.headers["Cache-Control"] == PRODUCT_CONTROL
    body: dict[str, Any] = await response.json()
    return body


async def test_metrics_count_where_hits_were_found(client: Client, people: People) -> None:
    pid = (await new_product(client, people["seller"][1], "Counted Vase"))["productId"]
    for _ in range(3):  # a fill, then copies in this gateway's memory
        assert (await client.get(f"/v1/products/{pid}")).status == 200
    cache = client.app[RESPONSE_CACHE]
    with unchecked("/metrics is Prometheus text, outside the OpenAPI document"):
        text = await (await client.get("/metrics")).text()
    assert f'mercato_response_cache_answers_total{{source="local"}} {cache.local_hits:.1f}' in text
    assert cache.local_hits >= 2
    assert "mercato_response_cache_generation_reads_total" in text
