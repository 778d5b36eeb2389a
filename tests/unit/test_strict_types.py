"""Strict JSON types in every body: a number is a JSON number, a string a string (defect 9)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import BaseModel

from gateway.catalog.schemas import CreateProductBody, ReviewBody
from gateway.http.problems import PROBLEM_JSON
from gateway.http.validation import parse_body
from gateway.identity.schemas import RolesBody
from gateway.orders.schemas import OrderBody
from tests.support.edge import edge_app

Client = TestClient[web.Request, web.Application]
ORDER = {"items": [{"productId": "p1", "quantity": 3}], "paymentMethod": "tok_visa"}
PRODUCT = {"name": "Book", "category": "ebooks", "price": "12.50", "currency": "USD"}
MODELS: dict[str, type[BaseModel]] = {
    "orders": OrderBody, "products": CreateProductBody, "reviews": ReviewBody, "roles": RolesBody,
}


def _echo(model: type[BaseModel]) -> Any:
    async def handler(request: web.Request) -> web.Response:
        body = await parse_body(request, model)
        return web.json_response(body.model_dump(mode="json", by_alias=True))

    return handler


@pytest.fixture(scope="module")
async def client() -> AsyncIterator[Client]:
    app = edge_app()
    for name, model in MODELS.items():
        app.router.add_post(f"/{name}", _echo(model))
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def _field_error(client: Client, path: str, body: dict[str, Any]) -> dict[str, str]:
    resp = await client.post(path, json=body)
    assert resp.status == 422, await resp.text()
    assert resp.content_type == PROBLEM_JSON
    problem = await resp.json(content_type=PROBLEM_JSON)
    assert problem["code"] == "VALIDATION_ERROR"
    return {e["field"]: e["message"] for e in problem["errors"]}


async def test_a_quantity_sent_as_a_string_is_refused_and_named(client: Client) -> None:
    body = {**ORDER, "items": [{"productId": "p1", "quantity": "3"}]}
    assert await _field_error(client, "/orders", body) == {
        "items.0.quantity": "Input should be a valid integer"
    }


@pytest.mark.parametrize("quantity", [True, 3.5, "3", "3.0", [3], None])
async def test_only_a_json_integer_is_a_quantity(client: Client, quantity: Any) -> None:
    body = {**ORDER, "items": [{"productId": "p1", "quantity": quantity}]}
    assert set(await _field_error(client, "/orders", body)) == {"items.0.quantity"}


@pytest.mark.parametrize("quantity", [3, 3.0])
async def test_a_json_integer_quantity_is_accepted(client: Client, quantity: float) -> None:
    # JSON Schema's "integer", as published, is a number of zero fraction: 3.0 is one.
    body = {**ORDER, "items": [{"productId": "p1", "quantity": quantity}]}
    resp = await client.post("/orders", json=body)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["items"] == [{"productId": "p1", "quantity": 3}]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/products", {**PRODUCT, "stock": "5"}, "stock"),
        ("/products", {**PRODUCT, "name": 5}, "name"),
        # Money is a decimal string by the contract: a JSON number is not a price.
        ("/products", {**PRODUCT, "price": 12.5}, "price"),
        ("/reviews", {"rating": "5", "comment": "ok"}, "rating"),
        ("/reviews", {"rating": 5, "comment": False}, "comment"),
        ("/roles", {"roles": "admin"}, "roles"),
    ],
)
async def test_every_body_is_strict(
    client: Client, path: str, body: dict[str, Any], field: str
) -> None:
    assert field in await _field_error(client, path, body)


async def test_strict_bodies_still_take_decimal_price_strings(client: Client) -> None:
    resp = await client.post("/products", json={**PRODUCT, "stock": 5})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["price"] == "12.50"
