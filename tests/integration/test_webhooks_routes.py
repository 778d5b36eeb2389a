"""/v1/webhooks against the gateway, MongoDB and Kafka: who may, what is checked, what is shown."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pymongo.asynchronous.database import AsyncDatabase

from config import Settings
from gateway.identity.auth import TokenService
from gateway.webhooks.keys import DELIVERIES
from stores.webhooks import DELIVERIES as DELIVERIES_COLLECTION
from stores.webhooks import Endpoint, WebhookRepository
from streams.envelope import format_time, utcnow
from tests.support.http import gateway_client

pytestmark = pytest.mark.integration
Client = TestClient[web.Request, web.Application]
Json = dict[str, Any]
HOOK = "https://hooks.example.com/mercato"


@pytest.fixture
async def client(topics: Settings) -> AsyncIterator[Client]:
    """The gateway in process, two endpoints per owner at most."""
    async with gateway_client(dataclasses.replace(topics, webhook_max_per_owner=2)) as c:
        yield c


@pytest.fixture
def auth(topics: Settings) -> Any:
    """A bearer header for a fresh user of ``role``."""
    tokens = TokenService(topics)

    def header(role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens.issue_access(uuid.uuid4().hex, [role])}"}

    return header


async def create(client: Client, who: dict[str, str], **body: Any) -> Any:
    return await client.post("/v1/webhooks", headers=who,
                             json={"url": HOOK, "events": ["order.*"], **body})


async def test_sellers_and_admins_register_and_see_only_their_own(
    client: Client, auth: Any
) -> None:
    seller, other = auth("seller"), auth("seller")
    created = await create(client, seller, description="orders to the ERP")
    assert created.status == 201, await created.text()
    endpoint: Json = await created.json()
    assert endpoint["secret"].startswith("whsec_")
    assert created.headers["Location"] == f"/v1/webhooks/{endpoint['webhookId']}"
    path = f"/v1/webhooks/{endpoint['webhookId']}"

    shown = await (await client.get(path, headers=seller)).json()
    assert "secret" not in shown
    assert (shown["url"], shown["events"], shown["enabled"]) == (HOOK, ["order.*"], True)
    listed = await (await client.get("/v1/webhooks", headers=seller)).json()
    assert [e["webhookId"] for e in listed["data"]] == [endpoint["webhookId"]]
    assert "secret" not in listed["data"][0]

    for method in ("get", "patch", "delete"):
        kwargs: Json = {"json": {"enabled": False}} if method == "patch" else {}
        hidden = await getattr(client, method)(path, headers=other, **kwargs)
        assert hidden.status == 404, method
    assert (await client.get(path + "/deliveries", headers=other)).status == 404
    assert (await client.post(path + "/test", headers=other)).status == 404
    assert (await client.get("/v1/webhooks", headers=other)).status == 200

    admin = await create(client, auth("admin"))
    assert admin.status == 201, await admin.text()


async def test_buyers_and_strangers_are_refused(client: Client, auth: Any) -> None:
    refused = await create(client, auth("buyer"))
    assert refused.status == 403
    assert (await refused.json())["code"] == "INSUFFICIENT_SCOPE"
    assert (await client.get("/v1/webhooks")).status == 401


@pytest.mark.parametrize(("body", "code"), [
    ({"url": "ftp://hooks.example.com/x"}, "WEBHOOK_URL_REFUSED"),
    ({"url": "https://u:p@hooks.example.com/x"}, "WEBHOOK_URL_REFUSED"),
    ({"events": ["order.shipped"]}, "WEBHOOK_EVENTS"),
    ({"events": []}, "VALIDATION_ERROR"),
    ({"url": "https://hooks.example.com/" + "a" * 2100}, "VALIDATION_ERROR"),
])
async def test_bad_urls_and_events_are_422_with_their_code(
    client: Client, auth: Any, body: Json, code: str
) -> None:
    refused = await create(client, auth("seller"), **body)
    assert refused.status == 422, await refused.text()
    assert (await refused.json())["code"] == code


async def test_an_owner_may_register_only_so_many(client: Client, auth: Any) -> None:
    seller = auth("seller")
    for _ in range(2):
        assert (await create(client, seller)).status == 201
    over = await create(client, seller)
    assert over.status == 409
    assert (await over.json())["code"] == "WEBHOOK_LIMIT"


async def test_patch_delete_and_an_empty_delivery_log(client: Client, auth: Any) -> None:
    seller = auth("seller")
    endpoint = await (await create(client, seller)).json()
    path = f"/v1/webhooks/{endpoint['webhookId']}"
    changed = await client.patch(path, headers=seller,
                                 json={"events": ["payment.*", "order.placed"], "enabled": False})
    assert changed.status == 200, await changed.text()
    assert (await changed.json())["events"] == ["payment.*", "order.placed"]
    assert (await changed.json())["enabled"] is False
    bad = await client.patch(path, headers=seller, json={"url": "gopher://x"})
    assert (await bad.json())["code"] == "WEBHOOK_URL_REFUSED"

    log = await client.get(path + "/deliveries", headers=seller)
    assert log.status == 200
    assert (await log.json())["data"] == []
    missing = await client.post(f"{path}/deliveries/{uuid.uuid4().hex}/retry", headers=seller)
    assert missing.status == 404
    assert (await client.post(path + "/test", headers=seller)).status == 202

    assert (await client.delete(path, headers=seller)).status == 204
    assert (await client.get(path, headers=seller)).status == 404


async def test_prod_refuses_urls_that_resolve_to_private_addresses(
    topics: Settings, auth: Any
) -> None:
    async with gateway_client(dataclasses.replace(topics, env="prod")) as prod:
        for url in ("http://127.0.0.1:8080/x", "http://localhost/x", "http://10.0.0.5/x",
                    "http://[::ffff:169.254.169.254]/x", "http://[fd00::1]/x"):
            refused = await create(prod, auth("seller"), url=url)
            assert refused.status == 422, url
            assert (await refused.json())["code"] == "WEBHOOK_URL_REFUSED"


async def test_the_router_finds_admins_endpoints_and_the_owners_subscribed_ones(
    db: AsyncDatabase[dict[str, Any]],
) -> None:
    repo = WebhookRepository(db)
    now = utcnow()

    async def add(ident: str, owner: str, events: list[str], *, admin: bool = False,
                  enabled: bool = True) -> None:
        await repo.create(Endpoint(
            webhook_id=ident, owner_id=owner, admin=admin, url=HOOK, events=events,
            description=None, secret="whsec_x", enabled=enabled, created_at=now,
        ))

    await add("admin-all", "admin-1", ["order.*"], admin=True)
    await add("mine", "seller-1", ["order.placed"])
    await add("mine-payments", "seller-1", ["payment.*"])
    await add("theirs", "seller-2", ["order.*"])
    await add("mine-off", "seller-1", ["order.*"], enabled=False)
    assert await repo.any_enabled()
    found = await repo.subscribed(["order.placed", "order.*"], {"seller-1"})
    assert sorted(e.webhook_id for e in found) == ["admin-all", "mine"]
    found = await repo.subscribed(["order.status_changed", "order.*"], set())
    assert [e.webhook_id for e in found] == ["admin-all"]
    await repo.disable("admin-all", "50 failed attempts in a row")
    found = await repo.subscribed(["order.status_changed", "order.*"], {"seller-2"})
    assert [e.webhook_id for e in found] == ["theirs"]


async def test_a_retry_on_a_disabled_endpoint_is_refused(client: Client, auth: Any) -> None:
    seller = auth("seller")
    endpoint = await (await create(client, seller)).json()
    path = f"/v1/webhooks/{endpoint['webhookId']}"
    # The delivery log as the webhooks agent writes it (no agent runs in this tier).
    await client.app[DELIVERIES].record("d1", {
        "deliveryId": "d1", "webhookId": endpoint["webhookId"], "eventId": "e1",
        "type": "order.placed", "body": '{"type": "order.placed"}', "status": "failed",
        "attempts": 5, "createdAt": format_time(utcnow()), "version": 1,
    })
    assert (await client.patch(path, headers=seller, json={"enabled": False})).status == 200
    refused = await client.post(path + "/deliveries/d1/retry", headers=seller)
    assert refused.status == 409
    assert (await refused.json())["code"] == "WEBHOOK_DISABLED"
    assert (await client.patch(path, headers=seller, json={"enabled": True})).status == 200
    assert (await client.post(path + "/deliveries/d1/retry", headers=seller)).status == 202
    (row,) = (await (await client.get(path + "/deliveries", headers=seller)).json())["data"]
    assert row["status"] == "failed"
    assert "body" not in row


async def test_the_delivery_log_expires_after_a_month(db: AsyncDatabase[dict[str, Any]]) -> None:
    indexes = await (await db[DELIVERIES_COLLECTION].list_indexes()).to_list()
    (ttl,) = [index for index in indexes if "expireAfterSeconds" in index]
    assert dict(ttl["key"]) == {"createdAt": 1}
    assert ttl["expireAfterSeconds"] == 30 * 24 * 3600


async def test_changing_events_moves_the_time_events_are_routed_from(
    db: AsyncDatabase[dict[str, Any]],
) -> None:
    repo = WebhookRepository(db)
    created = utcnow().replace(microsecond=0) - timedelta(minutes=1)
    await repo.create(Endpoint(
        webhook_id="w-since", owner_id="seller-1", admin=False, url=HOOK, events=["order.*"],
        description=None, secret="whsec_x", enabled=True, created_at=created,
    ))
    renamed = await repo.update("seller-1", "w-since", {"description": "ERP"})
    assert renamed is not None
    assert renamed.since == created
    changed = await repo.update("seller-1", "w-since", {"events": ["payment.*"]})
    assert changed is not None
    assert changed.since > created
