"""Every command endpoint, hit by concurrent requests that all send one X-Request-ID.

X-Request-ID is the client's log correlation id. Answers used to be matched by it at
some endpoints, so requests sharing one got each other's answers or none (503). Each
test sends ``N`` different requests at once with the same X-Request-ID and checks that
every one gets the answer to what it asked, through the real worker and broker, and
declares the endpoints it covers with ``@covers``; a domain's own module may hold its test.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiohttp import ClientResponse

from config import Settings
from gateway.app import create_app
from gateway.docs.openapi import build_openapi
from gateway.identity import keys
from mercato.embedded import Endpoints
from streams.admin import ensure_topics
from tests.conftest import make_settings
from tests.support.catalog import completed_order
from tests.support.files import bearer, mongo, upload
from tests.support.http import worker_and_gateway
from tests.support.orders import PASSWORD, Client, account, product, settled, stock_is
from tests.support.shared_request_ids import covered, covers

pytestmark = pytest.mark.integration
N = 4
SHARED_ID = "one-request-id-for-everyone"
Headers = dict[str, str]
Answer = tuple[int, Any]


@pytest.fixture(scope="module")
async def env(stack: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """One isolated world (topics, group, database) shared by this module's tests."""
    settings = make_settings(stack, tmp_path_factory.mktemp("shared-request-ids"))
    await ensure_topics(settings)
    return settings


@pytest.fixture(scope="module")
async def client(env: Settings) -> AsyncIterator[Client]:
    """A real worker process and the gateway in process."""
    async with worker_and_gateway(env) as c:
        await account(c, patience=90)  # the worker answers once its tables are open
        yield c


@pytest.fixture(scope="module")
def admin(env: Settings) -> Headers:
    """An admin's bearer header (the gateway trusts the token's roles)."""
    return bearer(env, f"admin-{uuid.uuid4().hex[:8]}", "admin")


def shared(headers: Headers | None = None) -> Headers:
    """``headers`` plus the X-Request-ID every request of a test sends."""
    return {**(headers or {}), "X-Request-ID": SHARED_ID}


async def at_once(*calls: Awaitable[ClientResponse]) -> list[Answer]:
    """Send ``calls`` concurrently; each one's status and JSON body (None when empty)."""
    responses = await asyncio.gather(*calls)
    answers: list[Answer] = []
    for response in responses:
        assert response.headers["X-Request-ID"] == SHARED_ID
        text = await response.text()
        answers.append((response.status, orjson.loads(text) if text else None))
    return answers


async def accounts(client: Client, role: str = "buyer") -> list[tuple[str, Headers]]:
    """``N`` registered, signed-in users of ``role``."""
    return list(await asyncio.gather(*(account(client, role) for _ in range(N))))


@covers("POST /v1/auth/register")
async def test_registrations(client: Client) -> None:
    emails = [f"twin-{i}-{uuid.uuid4().hex[:6]}@example.com" for i in range(N)]
    answers = await at_once(*(
        client.post("/v1/auth/register", headers=shared(), json={
            "email": email, "password": PASSWORD, "name": "Twin"})
        for email in emails
    ))
    assert [status for status, _ in answers] == [201] * N
    assert [body["email"] for _, body in answers] == emails


@covers("PATCH /v1/users/me")
async def test_profile_changes(client: Client) -> None:
    users = await accounts(client)
    answers = await at_once(*(
        client.patch("/v1/users/me", headers=shared(headers), json={"name": f"Name {i}"})
        for i, (_, headers) in enumerate(users)
    ))
    assert [status for status, _ in answers] == [200] * N
    assert [(body["userId"], body["name"]) for _, body in answers] == [
        (user_id, f"Name {i}") for i, (user_id, _) in enumerate(users)]


@covers("PUT /v1/users/{id}/roles")
async def test_role_changes(client: Client, admin: Headers) -> None:
    users = await accounts(client)
    wanted = [["buyer", "seller"] if i % 2 else ["seller"] for i in range(N)]
    answers = await at_once(*(
        client.put(f"/v1/users/{user_id}/roles", headers=shared(admin), json={"roles": roles})
        for (user_id, _), roles in zip(users, wanted, strict=True)
    ))
    assert [status for status, _ in answers] == [200] * N
    assert [(body["userId"], body["roles"]) for _, body in answers] == [
        (user_id, roles) for (user_id, _), roles in zip(users, wanted, strict=True)]


@covers("POST /v1/auth/password/reset/confirm")
async def test_password_resets(client: Client) -> None:
    users = await accounts(client)
    emails = []
    for user_id, _ in users:
        doc = await client.app[keys.USERS].by_id(user_id)
        assert doc is not None
        emails.append(doc.email)
    # The tokens the reset email would carry, issued by the gateway's own store.
    tokens = [await client.app[keys.RESET_TOKENS].issue(uid) for uid, _ in users]
    answers = await at_once(*(
        client.post("/v1/auth/password/reset/confirm", headers=shared(),
                    json={"token": token, "newPassword": f"brand new secret {i}"})
        for i, token in enumerate(tokens)
    ))
    assert [status for status, _ in answers] == [204] * N
    for i, email in enumerate(emails):  # each change was its own: each new password works
        login = await client.post("/v1/auth/login", json={
            "email": email, "password": f"brand new secret {i}"})
        assert login.status == 200, await login.text()


@covers(
    "POST /v1/products",
    "PATCH /v1/products/{product_id}",
    "PATCH /v1/products/{id}/stock",
    "DELETE /v1/products/{product_id}",
)
async def test_products_their_stock_and_archiving(client: Client) -> None:
    _, seller = await account(client, "seller")
    names = [f"Lamp {i} {uuid.uuid4().hex[:6]}" for i in range(N)]
    created = await at_once(*(
        client.post("/v1/products", headers=shared(seller), json={
            "name": name, "category": "Home", "price": "10.00", "currency": "USD", "stock": 10})
        for name in names
    ))
    assert [status for status, _ in created] == [201] * N
    assert [body["name"] for _, body in created] == names
    ids = [body["productId"] for _, body in created]
    assert len(set(ids)) == N

    etags = []
    for product_id in ids:
        current = await client.get(f"/v1/products/{product_id}")
        etags.append(current.headers["ETag"])
    updated = await at_once(*(
        client.patch(f"/v1/products/{product_id}", json={"name": f"Renamed {i}"},
                     headers=shared({**seller, "If-Match": etag}))
        for i, (product_id, etag) in enumerate(zip(ids, etags, strict=True))
    ))
    assert [status for status, _ in updated] == [200] * N
    assert [(body["productId"], body["name"]) for _, body in updated] == [
        (product_id, f"Renamed {i}") for i, product_id in enumerate(ids)]

    for product_id in ids:
        await stock_is(client, product_id, 10)
    changed = await at_once(*(
        client.patch(f"/v1/products/{product_id}/stock", headers=shared(seller),
                     json={"quantityChange": i + 1})
        for i, product_id in enumerate(ids)
    ))
    assert [status for status, _ in changed] == [200] * N
    assert [(body["productId"], body["currentStock"]) for _, body in changed] == [
        (product_id, 11 + i) for i, product_id in enumerate(ids)]

    archived = await at_once(*(
        client.delete(f"/v1/products/{product_id}", headers=shared(seller)) for product_id in ids
    ))
    assert [status for status, _ in archived] == [204] * N
    for product_id in ids:
        assert (await (await client.get(f"/v1/products/{product_id}")).json())["status"] == (
            "archived")


@covers("POST /v1/products/{product_id}/reviews")
async def test_reviews(client: Client, env: Settings) -> None:
    _, seller = await account(client, "seller")
    product_id = await product(client, seller, stock=5)
    buyers = await accounts(client)
    for buyer_id, _ in buyers:
        await completed_order(env, uuid.uuid4().hex, buyer_id, product_id)
    answers = await at_once(*(
        client.post(f"/v1/products/{product_id}/reviews", headers=shared(headers),
                    json={"rating": 1 + i, "comment": f"comment {i}"})
        for i, (_, headers) in enumerate(buyers)
    ))
    assert [status for status, _ in answers] == [201] * N
    assert [(body["buyerId"], body["rating"], body["comment"]) for _, body in answers] == [
        (buyer_id, 1 + i, f"comment {i}") for i, (buyer_id, _) in enumerate(buyers)]


@covers(
    "POST /v1/orders",
    "POST /v1/orders/{id}/cancel",
)
async def test_orders_and_their_cancellation(client: Client) -> None:
    _, seller = await account(client, "seller")
    product_id = await product(client, seller, stock=20)
    buyers = await accounts(client)
    placed = await at_once(*(
        client.post("/v1/orders", headers=shared({**headers, "Idempotency-Key": uuid.uuid4().hex}),
                    json={"items": [{"productId": product_id, "quantity": 1 + i}],
                          "paymentMethod": "tok_visa"})
        for i, (_, headers) in enumerate(buyers)
    ))
    assert [status for status, _ in placed] == [202] * N
    order_ids = [body["orderId"] for _, body in placed]
    assert len(set(order_ids)) == N
    for i, ((buyer_id, headers), order_id) in enumerate(zip(buyers, order_ids, strict=True)):
        order = await settled(client, headers, order_id, until={"completed"})
        assert order["buyerId"] == buyer_id  # the order answered is the one this buyer placed
        assert order["items"][0]["quantity"] == 1 + i

    cancelled = await at_once(*(
        client.post(f"/v1/orders/{order_id}/cancel", headers=shared(headers))
        for (_, headers), order_id in zip(buyers, order_ids, strict=True)
    ))
    assert [status for status, _ in cancelled] == [202] * N
    assert [body["orderId"] for _, body in cancelled] == order_ids


@covers("POST /v1/admin/orders/{id}/retry")
async def test_admin_retries(client: Client, env: Settings, admin: Headers) -> None:
    # Orders the read model shows stuck but the saga never saw: each retry reaches the saga,
    # and each is answered NOT_FOUND for its own order (a crossed or lost answer is a 503).
    order_ids = [f"ghost-{i}-{uuid.uuid4().hex[:6]}" for i in range(N)]
    mongo_client, db = mongo(env)
    try:
        await db["orders"].insert_many([{
            "_id": order_id, "buyerId": "nobody", "status": "completed", "items": [],
            "total": "0.00", "currency": "USD", "payment": {"status": "refund_failed"},
            "history": [], "createdAt": datetime.now(UTC),
        } for order_id in order_ids])
    finally:
        await mongo_client.close()
    answers = await at_once(*(
        client.post(f"/v1/admin/orders/{order_id}/retry", headers=shared(admin))
        for order_id in order_ids
    ))
    assert [(status, body["code"]) for status, body in answers] == [(404, "NOT_FOUND")] * N


@covers(
    "POST /v1/files",
    "POST /v1/files/{id}/permissions",
    "DELETE /v1/files/{id}/permissions/{userId}",
    "DELETE /v1/files/{id}",
)
async def test_files_and_their_permissions(client: Client, env: Settings) -> None:
    owner_id = f"owner-{uuid.uuid4().hex[:6]}"
    owner = bearer(env, owner_id)
    names = [f"notes-{i}.txt" for i in range(N)]
    uploaded = await at_once(*(
        upload(client, shared(owner), f"file {i}".encode(), name=name, declared_type="text/plain")
        for i, name in enumerate(names)
    ))
    assert [status for status, _ in uploaded] == [201] * N
    assert [body["name"] for _, body in uploaded] == names
    file_ids = [body["fileId"] for _, body in uploaded]
    assert len(set(file_ids)) == N

    readers = [f"reader-{i}-{uuid.uuid4().hex[:6]}" for i in range(N)]
    granted = await at_once(*(
        client.post(f"/v1/files/{file_id}/permissions", headers=shared(owner),
                    json={"userId": reader, "access": "read"})
        for file_id, reader in zip(file_ids, readers, strict=True)
    ))
    assert [status for status, _ in granted] == [201] * N
    assert [(body["fileId"], body["userId"]) for _, body in granted] == list(
        zip(file_ids, readers, strict=True))

    revoked = await at_once(*(
        client.delete(f"/v1/files/{file_id}/permissions/{reader}", headers=shared(owner))
        for file_id, reader in zip(file_ids, readers, strict=True)
    ))
    assert [status for status, _ in revoked] == [204] * N
    for file_id, reader in zip(file_ids, readers, strict=True):
        shown = await client.get(f"/v1/files/{file_id}", headers=bearer(env, reader))
        assert shown.status == 404

    deleted = await at_once(*(
        client.delete(f"/v1/files/{file_id}", headers=shared(owner)) for file_id in file_ids
    ))
    assert [status for status, _ in deleted] == [204] * N
    for file_id in file_ids:
        assert (await client.get(f"/v1/files/{file_id}", headers=owner)).status == 404


@covers(
    "POST /v1/notifications/{id}/read",
    "DELETE /v1/notifications/{id}",
    "POST /v1/notifications/read-all",
)
async def test_notification_changes(client: Client) -> None:
    users = await accounts(client)
    # Nobody has these notifications: each command is answered NOT_FOUND by the agent, and
    # a lost answer would be a 503 after the command timeout instead.
    for method, suffix in (("POST", "/read"), ("DELETE", "")):
        answers = await at_once(*(
            client.request(method, f"/v1/notifications/n-{i}{suffix}", headers=shared(headers))
            for i, (_, headers) in enumerate(users)
        ))
        assert [(status, body["code"]) for status, body in answers] == [(404, "NOT_FOUND")] * N
    read_all = await at_once(*(
        client.post("/v1/notifications/read-all", headers=shared(headers)) for _, headers in users
    ))
    assert [status for status, _ in read_all] == [204] * N


@covers(
    "POST /v1/groups",
    "POST /v1/groups/{id}/members",
    "DELETE /v1/groups/{id}/members/{userId}",
)
async def test_groups_and_their_members(client: Client) -> None:
    owners, members = await accounts(client), await accounts(client)
    created = await at_once(*(
        client.post("/v1/groups", json={"name": f"group {i}"}, headers=shared(headers))
        for i, (_, headers) in enumerate(owners)
    ))
    assert [(status, body["name"], body["ownerId"]) for status, body in created] == [
        (201, f"group {i}", owner_id) for i, (owner_id, _) in enumerate(owners)]
    groups = [body["groupId"] for _, body in created]
    added = await at_once(*(
        client.post(f"/v1/groups/{group_id}/members", json={"userId": member_id},
                    headers=shared(headers))
        for group_id, (_, headers), (member_id, _) in zip(groups, owners, members, strict=True)
    ))
    assert [(status, body["groupId"], member_id in body["members"])
            for (status, body), (member_id, _) in zip(added, members, strict=True)] == [
        (201, group_id, True) for group_id in groups]
    removed = await at_once(*(
        client.delete(f"/v1/groups/{group_id}/members/{member_id}", headers=shared(headers))
        for group_id, (_, headers), (member_id, _) in zip(groups, owners, members, strict=True)
    ))
    assert [status for status, _ in removed] == [204] * N


async def test_every_command_endpoint_is_covered_here(env: Settings) -> None:
    # Every command endpoint needs a test like the ones above, declared with ``@covers``
    # (tests/support/shared_request_ids.py) in this module or the domain's own. They are the
    # operations whose 503 says that no worker answered (or confirmed) in time: those that
    # wait for an agent.
    document = build_openapi(create_app(env), title="Mercato", version="1")
    waiting = sorted(
        f"{method.upper()} {path}"
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if method != "get"
        and "worker" in operation["responses"].get("503", {}).get("description", "").lower()
    )
    declared = covered()
    assert waiting == sorted(declared), (
        f"no @covers test: {sorted(set(waiting) - set(declared))}; "
        f"not a command endpoint: {sorted(set(declared) - set(waiting))}")
