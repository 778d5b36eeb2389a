"""Helpers for the catalog tests: real accounts, products through REST, orders."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from pymongo import AsyncMongoClient

from config import Settings
from mercato.admin import create_admin

Client = TestClient[web.Request, web.Application]
Headers = dict[str, str]
PASSWORD = "correct horse battery"


async def login(client: Client, email: str) -> Headers:
    """A bearer header for the account ``email``."""
    response = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status == 200, await response.text()
    return {"Authorization": f"Bearer {(await response.json())['accessToken']}"}


async def signed_up(client: Client, email: str, role: str = "buyer") -> tuple[str, Headers]:
    """Register ``email`` through REST (the registrations agent), then sign in."""
    body = {"email": email, "password": PASSWORD, "name": email[:20], "role": role}
    deadline = time.monotonic() + 30
    # A just-joined worker may still be opening its tables; a 503 applied nothing, so retry.
    while (response := await client.post("/v1/auth/register", json=body)).status == 503:
        assert time.monotonic() < deadline, await response.text()
    assert response.status == 201, await response.text()
    return (await response.json())["userId"], await login(client, email)


async def admin(client: Client, settings: Settings, email: str) -> Headers:
    """Bootstrap an admin with ``mercato admin create``'s function, then sign in."""
    assert await create_admin(settings, email=email, password=PASSWORD, name="Admin") == 0
    return await login(client, email)


def product_body(name: str, price: str = "10.00", **extra: Any) -> dict[str, Any]:
    """A valid POST /v1/products body."""
    body = {"name": name, "description": "", "category": "General", "price": price,
            "currency": "USD"}
    return {**body, **extra}


async def new_product(client: Client, headers: Headers, name: str, **extra: Any) -> dict[str, Any]:
    """Create a product through REST; its body (the ETag under ``_etag``)."""
    response = await client.post("/v1/products", json=product_body(name, **extra), headers=headers)
    assert response.status == 201, await response.text()
    return {**await response.json(), "_etag": response.headers["ETag"]}


async def get_product(client: Client, product_id: str) -> dict[str, Any]:
    """GET one product (its ETag under ``_etag``); it must exist."""
    response = await client.get(f"/v1/products/{product_id}")
    assert response.status == 200, await response.text()
    return {**await response.json(), "_etag": response.headers["ETag"]}


async def list_products(client: Client, **query: str) -> dict[str, Any]:
    """GET /v1/products with ``query``; it must succeed."""
    response = await client.get("/v1/products", params=query)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def completed_order(settings: Settings, order_id: str, buyer_id: str, *products: str) -> None:
    """Insert an order as the saga's projection would after completion."""
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
    try:
        await mongo[settings.mongo_database]["orders"].insert_one({
            "_id": order_id, "buyerId": buyer_id, "status": "completed",
            "items": [{"productId": p, "quantity": 1} for p in products],
        })
    finally:
        await mongo.close()
