"""The test clients' response contract: what an app's OpenAPI document allows, and nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tests.support.contract import DOCUMENT_PATH, ResponseContract, unchecked

Client = TestClient[web.Request, web.Application]
PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "contract", "version": "1"},
    "paths": {
        "/things/{id}": {"get": {"operationId": "thing", "responses": {
            "200": {"description": "it", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}}},
            "404": {"description": "none", "content": PROBLEM},
        }}},
        "/things/mine": {"get": {"operationId": "mine", "responses": {
            "2XX": {"description": "mine", "content": {
                "application/json": {"schema": {"type": "array"}}}},
        }}},
        "/things/{id}/content": {"get": {"operationId": "content", "responses": {
            "200": {"description": "bytes", "content": {"image/*": {}}},
            "default": {"description": "a problem", "content": PROBLEM},
        }}},
    },
    "components": {"schemas": {
        "Thing": {"type": "object", "required": ["id", "size"], "properties": {
            "id": {"type": "string"}, "size": {"$ref": "#/components/schemas/Size"}}},
        "Size": {"type": "integer", "minimum": 0},
        "Problem": {"type": "object", "required": ["code"]},
    }},
}


async def _document(request: web.Request) -> web.Response:
    return web.json_response(DOCUMENT)


async def _thing(request: web.Request) -> web.Response:
    answers: dict[str, web.Response] = {
        "good": web.json_response({"id": "good", "size": 3}),
        "negative": web.json_response({"id": "negative", "size": -1}),
        "extra": web.json_response({"id": "extra", "size": 1, "secret": "x"}),
        "teapot": web.json_response({"id": "teapot", "size": 1}, status=418),
        "text": web.Response(text="good"),
        "gone": web.json_response({"code": "NOT_FOUND"}, status=404,
                                  content_type="application/problem+json"),
    }
    return answers[request.match_info["id"]]


async def _mine(request: web.Request) -> web.Response:
    return web.json_response([], status=201)


async def _content(request: web.Request) -> web.StreamResponse:
    if request.match_info["id"] == "broken":
        return web.json_response({"code": "X"}, status=500,
                                 content_type="application/problem+json")
    response = web.StreamResponse(headers={"Content-Type": "image/png"})
    await response.prepare(request)
    # Never finished: the contract must not wait for a stream's body.
    await response.write(b"\x89PNG")
    return response


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    app = web.Application()
    app.router.add_get(DOCUMENT_PATH, _document)
    app.router.add_get("/things/mine", _mine)
    app.router.add_get("/things/{id}", _thing)
    app.router.add_get("/things/{id}/content", _content)
    app.router.add_get("/raw", _mine)
    contract = ResponseContract()
    async with TestClient(TestServer(app), middlewares=(contract,)) as test_client:
        contract.load(await (await test_client.get(DOCUMENT_PATH)).json())
        yield test_client


async def test_a_declared_response_passes(client: Client) -> None:
    response = await client.get("/things/good")
    assert await response.json() == {"id": "good", "size": 3}
    gone = await client.get("/things/gone")
    assert gone.status == 404


async def test_an_undeclared_status_fails(client: Client) -> None:
    with pytest.raises(AssertionError, match=r"GET /things/\{id\} \(thing\) answered 418, "
                                             r"which it does not declare \(declared: 200, 404\)"):
        await client.get("/things/teapot")


async def test_a_schema_violation_fails_with_its_path(client: Client) -> None:
    with pytest.raises(AssertionError, match=r"#/components/schemas/Thing at \$\.size: "
                                             r"-1 is less than the minimum of 0"):
        await client.get("/things/negative")


async def test_a_field_the_model_does_not_list_fails(client: Client) -> None:
    with pytest.raises(AssertionError, match=r"at \$: Unevaluated properties are not allowed "
                                             r"\('secret' was unexpected\)"):
        await client.get("/things/extra")


async def test_an_undeclared_content_type_fails(client: Client) -> None:
    with pytest.raises(AssertionError, match=r"answered 200 with text/plain; declared for "
                                             r"200: application/json"):
        await client.get("/things/text")


async def test_ranges_defaults_and_literal_segments_are_matched(client: Client) -> None:
    # /things/mine is its own operation (2XX), not /things/{id} with id "mine".
    assert (await client.get("/things/mine")).status == 201
    assert (await client.get("/things/broken/content")).status == 500


async def test_a_stream_is_held_to_its_content_type_without_reading_it(client: Client) -> None:
    async with client.get("/things/good/content") as response:
        assert response.content_type == "image/png"
        assert await response.content.readexactly(4) == b"\x89PNG"


async def test_a_path_outside_the_document_fails_unless_unchecked(client: Client) -> None:
    with pytest.raises(AssertionError, match=r"GET /raw matches no operation"):
        await client.get("/raw")
    with unchecked("a raw path no operation declares"):
        assert (await client.get("/raw")).status == 201
    with pytest.raises(ValueError, match="say why"), unchecked(" "):
        pass
