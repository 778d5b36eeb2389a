"""Feature flags over the real broker: the admin API, the caller's view, the gates, audit.

No worker runs here: a flag is written straight to the ``config`` topic and read back by
the gateway's own book, and every refusal tested is answered before any command is sent.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from config import Settings
from gateway import keys
from gateway.identity.auth import TokenService
from gateway.ops.health import CACHE_SECONDS
from streams.envelope import Envelope
from streams.flags import book as flag_book
from streams.flags.rules import bucket
from tests.support.http import gateway_client
from tests.support.orders import read_all

pytestmark = pytest.mark.integration
Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def client(topics: Settings) -> AsyncIterator[Client]:
    """The gateway in process over this test's topics."""
    async with gateway_client(topics) as c:
        yield c


def bearer(settings: Settings, *roles: str, user_id: str | None = None) -> dict[str, str]:
    """A bearer header of a user with ``roles`` (the gateway trusts the token's roles)."""
    token = TokenService(settings).issue_access(user_id or uuid.uuid4().hex, list(roles))
    return {"Authorization": f"Bearer {token}"}


async def put_flag(
    client: Client, admin: dict[str, str], name: str, body: dict[str, Any]
) -> dict[str, Any]:
    """PUT one flag as an admin; its new state."""
    response = await client.put(f"/v1/admin/features/{name}", json=body, headers=admin)
    assert response.status == 200, await response.text()
    state: dict[str, Any] = await response.json()
    return state


async def test_built_in_flags_have_their_defaults(client: Client, topics: Settings) -> None:
    listed = await client.get("/v1/admin/features", headers=bearer(topics, "admin"))
    assert listed.status == 200, await listed.text()
    flags = {f["name"]: f for f in (await listed.json())["data"]}
    assert {name: (f["enabled"], f["isSet"]) for name, f in flags.items()} == {
        "maintenance": (False, False),
        "registrations.open": (True, False),
        "reviews.enabled": (True, False),
    }
    mine = await client.get("/v1/config/features")
    assert await mine.json() == {
        "maintenance": False, "registrations.open": True, "reviews.enabled": True
    }


async def test_a_flag_set_is_listed_and_applies_to_the_caller(
    client: Client, topics: Settings
) -> None:
    admin_id = uuid.uuid4().hex
    admin = bearer(topics, "admin", user_id=admin_id)
    state = await put_flag(client, admin, "checkout.beta", {"enabled": True, "roles": ["seller"]})
    assert state["name"] == "checkout.beta"
    assert (state["enabled"], state["roles"], state["isSet"]) == (True, ["seller"], True)
    assert state["updatedBy"] == admin_id
    listed = {f["name"]: f for f in (await (await client.get(
        "/v1/admin/features", headers=admin)).json())["data"]}
    assert listed["checkout.beta"] == state
    seller = await client.get("/v1/config/features", headers=bearer(topics, "seller"))
    buyer = await client.get("/v1/config/features", headers=bearer(topics, "buyer"))
    anonymous = await client.get("/v1/config/features")
    assert (await seller.json())["checkout.beta"] is True
    assert (await buyer.json())["checkout.beta"] is False
    assert (await anonymous.json())["checkout.beta"] is False


async def test_a_rollout_answers_each_user_by_their_bucket(
    client: Client, topics: Settings
) -> None:
    await put_flag(client, bearer(topics, "admin"), "search.suggest",
                   {"enabled": True, "rolloutPercent": 50})
    users = [uuid.uuid4().hex for _ in range(12)]
    for user in users:
        answer = await client.get("/v1/config/features",
                                  headers=bearer(topics, "buyer", user_id=user))
        assert (await answer.json())["search.suggest"] is (bucket("search.suggest", user) < 50)


async def test_invalid_changes_are_refused(client: Client, topics: Settings) -> None:
    admin = bearer(topics, "admin")
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("Not A Flag", {"enabled": True}, "INVALID_FLAG_NAME"),
        ("maintenance", {"enabled": True, "rolloutPercent": 101}, "VALIDATION_ERROR"),
        ("maintenance", {"enabled": True, "roles": ["root"]}, "VALIDATION_ERROR"),
        ("maintenance", {"enabled": "yes"}, "VALIDATION_ERROR"),
        ("maintenance", {"rolloutPercent": 5}, "VALIDATION_ERROR"),
    ]
    for name, body, code in cases:
        response = await client.put(f"/v1/admin/features/{name}", json=body, headers=admin)
        assert response.status == 422, (name, body, await response.text())
        assert (await response.json())["code"] == code
    # Nothing of it was applied.
    assert (await (await client.get("/v1/config/features")).json())["maintenance"] is False


async def test_only_admins_list_or_set_flags(client: Client, topics: Settings) -> None:
    for headers in (bearer(topics, "buyer"), bearer(topics, "seller")):
        listed = await client.get("/v1/admin/features", headers=headers)
        assert listed.status == 403
        assert (await listed.json())["code"] == "INSUFFICIENT_SCOPE"
        put = await client.put("/v1/admin/features/maintenance", json={"enabled": True},
                               headers=headers)
        assert put.status == 403
    anonymous = await client.put("/v1/admin/features/maintenance", json={"enabled": True})
    assert anonymous.status == 401


async def test_every_change_is_audited(client: Client, topics: Settings) -> None:
    admin_id = uuid.uuid4().hex
    admin = bearer(topics, "admin", user_id=admin_id)
    await put_flag(client, admin, "reviews.enabled", {"enabled": False})
    await put_flag(client, admin, "reviews.enabled", {"enabled": True, "rolloutPercent": 10})
    audited = [Envelope.decode(value) for _, _, value in await read_all(topics, ["audit"])]
    changes = [e for e in audited if e.type == "config.flag_changed"]
    assert [(e.key, e.data["actorId"]) for e in changes] == [(admin_id, admin_id)] * 2
    first, second = (e.data for e in changes)
    assert (first["name"], first["enabled"], first["previous"]) == ("reviews.enabled", False, None)
    assert (second["enabled"], second["rolloutPercent"]) == (True, 10)
    assert second["previous"] == {"enabled": False, "rolloutPercent": None, "roles": None}
    configs = [Envelope.decode(value) for _, _, value in await read_all(topics, ["config"])]
    assert [(e.type, e.key) for e in configs] == [("flag.set", "reviews.enabled")] * 2


async def test_maintenance_refuses_writes_but_not_reads_or_the_way_out(
    client: Client, topics: Settings
) -> None:
    admin = bearer(topics, "admin")
    await put_flag(client, admin, "maintenance", {"enabled": True})
    register = await client.post("/v1/auth/register", json={
        "email": f"{uuid.uuid4().hex}@example.com", "password": "password-123", "name": "Ada",
    })
    assert register.status == 503
    assert (await register.json())["code"] == "MAINTENANCE"
    assert register.headers["Retry-After"] == str(topics.maintenance_retry_after)
    assert (await client.get("/v1/products")).status == 200
    assert (await client.get("/v1/config/features")).status == 200
    # Logins answer (here: no such account), so an admin can sign in to switch it off.
    login = await client.post("/v1/auth/login", json={
        "email": "nobody@example.com", "password": "password-123"})
    assert login.status == 401
    # So does signing out (an unknown token is answered the same as a known one).
    logout = await client.post("/v1/auth/logout", json={"refreshToken": "x" * 20})
    assert logout.status == 204
    await put_flag(client, admin, "maintenance", {"enabled": False})


async def test_closed_registrations_and_disabled_reviews_are_refused(
    client: Client, topics: Settings
) -> None:
    admin = bearer(topics, "admin")
    await put_flag(client, admin, "registrations.open", {"enabled": False})
    register = await client.post("/v1/auth/register", json={
        "email": f"{uuid.uuid4().hex}@example.com", "password": "password-123", "name": "Ada",
    })
    assert register.status == 403
    assert (await register.json())["code"] == "REGISTRATIONS_CLOSED"
    await put_flag(client, admin, "reviews.enabled", {"enabled": False})
    review = await client.post(f"/v1/products/{uuid.uuid4().hex}/reviews",
                               json={"rating": 5, "comment": "fine"},
                               headers=bearer(topics, "buyer"))
    assert review.status == 403
    assert (await review.json())["code"] == "REVIEWS_DISABLED"


async def test_the_book_keeps_following_after_a_failed_fetch_and_readiness_reports_it(
    client: Client, topics: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    book = client.app[keys.FLAGS]
    monkeypatch.setattr(flag_book, "FOLLOW_RETRY_SECONDS", 0.05)
    consumer = book._consumer
    assert consumer is not None
    fetch = consumer.getmany
    faults = [RuntimeError("injected"), ValueError("injected")]

    async def failing(*args: Any, **kwargs: Any) -> Any:
        # Not a KafkaError: such a failure used to end the task and freeze every flag.
        if faults:
            raise faults.pop(0)
        return await fetch(*args, **kwargs)

    monkeypatch.setattr(consumer, "getmany", failing)
    for _ in range(100):
        if not faults and book.follow_failures == 0:
            break
        await asyncio.sleep(0.05)
    assert not faults
    assert book.follow_error == "ValueError('injected')"
    await put_flag(client, bearer(topics, "admin"), "reviews.enabled", {"enabled": False})
    assert not book.enabled("reviews.enabled")
    assert (await (await client.get("/health/ready")).json())["checks"]["flags"]["ok"]

    # A follower that ended after all is reported (readiness is cached for CACHE_SECONDS).
    task = book._task
    assert task is not None
    task.cancel()
    await asyncio.wait({task})
    await asyncio.sleep(CACHE_SECONDS + 0.1)
    flags = (await (await client.get("/health/ready")).json())["checks"]["flags"]
    assert flags["ok"] is False
    assert "stopped following the config topic" in flags["error"]
