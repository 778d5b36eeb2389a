"""The catalog end to end: REST, the catalog agent in a real worker, MongoDB read model."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaProducer

from config import Settings
from streams.envelope import new_event
from streams.events.inventory import StockChanged
from tests.integration.catalog.conftest import People
from tests.support.catalog import Client, new_product
from tests.support.catalog import get_product as get
from tests.support.catalog import list_products as listing
from tests.support.files import eventually, upload

pytestmark = pytest.mark.integration


async def test_crud_with_etags_ownership_and_archive(client: Client, people: People) -> None:
    seller_id, seller = people["seller"]
    created = await new_product(client, seller, "Desk Lamp", price="12.5", stock=5)
    pid, tag = created["productId"], created["_etag"]
    assert (created["sellerId"], created["price"], created["stock"]) == (seller_id, "12.50", 5)
    assert created["status"] == "active"
    assert created["rating"] == {"average": 0.0, "count": 0}
    # The inventory agent owns stock; the projection catches up with its stock_changed.
    shown = await eventually(lambda: get(client, pid), ok=lambda p: p["stock"] == 5)
    assert shown["stock"] == 5
    assert shown["_etag"] == tag
    cached = await client.get(f"/v1/products/{pid}", headers={"If-None-Match": tag})
    assert cached.status == 304

    path = f"/v1/products/{pid}"
    missing = await client.patch(path, json={"price": "15.00"}, headers=seller)
    assert (missing.status, (await missing.json())["code"]) == (428, "PRECONDITION_REQUIRED")
    changed = await client.patch(path, json={"price": "15.00"}, headers={**seller, "If-Match": tag})
    assert changed.status == 200
    assert (await changed.json())["price"] == "15.00"
    new_tag = changed.headers["ETag"]
    assert new_tag != tag
    stale = await client.patch(path, json={"name": "Lamp"}, headers={**seller, "If-Match": tag})
    assert (stale.status, (await stale.json())["code"]) == (412, "PRECONDITION_FAILED")

    rival = people["rival"][1]
    foreign = await client.patch(
        path, json={"name": "Mine"}, headers={**rival, "If-Match": new_tag}
    )
    assert foreign.status == 403
    assert (await client.delete(path, headers=rival)).status == 403
    by_admin = await client.patch(
        path, json={"name": "Desk Lamp Pro"}, headers={**people["admin"][1], "If-Match": new_tag}
    )
    assert by_admin.status == 200, await by_admin.text()

    assert (await client.delete(path, headers=seller)).status == 204
    archived = await get(client, pid)
    assert archived["status"] == "archived"
    assert archived["name"] == "Desk Lamp Pro"
    active = await listing(client, sellerId=seller_id)
    assert pid not in [p["productId"] for p in active["data"]]
    gone = await listing(client, sellerId=seller_id, status="archived")
    assert [p["productId"] for p in gone["data"]] == [pid]
    late = await client.patch(path, json={"name": "x"}, headers={**seller, "If-Match": "*"})
    assert (late.status, (await late.json())["code"]) == (409, "PRODUCT_ARCHIVED")


async def test_writes_need_the_seller_scope_and_valid_fields(
    client: Client, people: People
) -> None:
    buyer = people["buyer"][1]
    denied = await client.post("/v1/products", json={"name": "x"}, headers=buyer)
    assert denied.status == 403
    bad = await client.post(
        "/v1/products", json={"name": "", "category": "c", "price": "-1", "currency": "usd",
                              "stock": -2},
        headers=people["seller"][1],
    )
    assert bad.status == 422
    fields = {e["field"] for e in (await bad.json())["errors"]}
    assert fields == {"name", "price", "currency", "stock"}
    unknown = await client.get("/v1/products/nope")
    assert unknown.status == 404


async def test_stock_projection_follows_inventory_events(
    client: Client, env: Settings, people: People
) -> None:
    pid = (await new_product(client, people["seller"][1], "Stool"))["productId"]
    producer = AIOKafkaProducer(bootstrap_servers=env.kafka_bootstrap)
    await producer.start()
    try:
        for current in (7, 4):
            event = new_event(
                StockChanged(product_id=pid, current_stock=current, change=0, reason="adjusted"),
                key=pid, source="tests",
            )
            await producer.send_and_wait(
                env.topic("inventory"), key=pid.encode(), value=event.encode()
            )
    finally:
        await producer.stop()
    shown = await eventually(lambda: get(client, pid), ok=lambda p: p["stock"] == 4)
    assert shown["stock"] == 4  # the later record wins


async def test_files_link_only_to_products_their_uploader_sells(
    client: Client, people: People
) -> None:
    seller, rival = people["seller"][1], people["rival"][1]
    pid = (await new_product(client, seller, "Poster"))["productId"]
    refused = await upload(client, rival, b"rival art", product_id=pid)
    assert (refused.status, (await refused.json())["code"]) == (403, "PRODUCT_NOT_OWNED")
    accepted = await upload(client, seller, b"own art", product_id=pid)
    assert accepted.status == 201, await accepted.text()
    file_id = (await accepted.json())["fileId"]
    with_file = await new_product(client, seller, "Framed Poster", fileIds=[file_id])
    assert with_file["fileIds"] == [file_id]
    foreign = await client.post(
        "/v1/products", headers=rival,
        json={"name": "Copy", "category": "c", "price": "1", "currency": "USD",
              "fileIds": [file_id]},
    )
    assert foreign.status == 422


async def test_a_malformed_if_match_is_400_and_changes_nothing(
    client: Client, people: People
) -> None:
    # Unquoted or empty, it matches no version; taken as "no precondition" it would let a
    # client that meant to guard its write overwrite someone else's.
    seller = people["seller"][1]
    created = await new_product(client, seller, "Guarded Lamp", price="3.00", stock=1)
    path = f"/v1/products/{created['productId']}"
    for bad in ("8HA", "W/8HA", '"1", 2'):
        deleted = await client.delete(path, headers={**seller, "If-Match": bad})
        assert (deleted.status, (await deleted.json())["code"]) == (400, "MALFORMED_REQUEST")
        patched = await client.patch(path, json={"name": "x"}, headers={**seller, "If-Match": bad})
        assert (patched.status, (await patched.json())["code"]) == (400, "MALFORMED_REQUEST")
    assert (await get(client, created["productId"]))["status"] == "active"
