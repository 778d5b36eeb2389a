"""OpenAPI 3.1 generated from the gateway's routes: operations, schemas, security, refs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import BaseModel

from config import Settings
from gateway import keys
from gateway.app import create_app
from gateway.docs import pages as docs
from gateway.docs.openapi import OPERATION_ATTR, Operation, build_openapi, operation
from gateway.identity import auth_routes as auth
from tests.support.edge import edge_app

Document = dict[str, Any]


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> Document:
    settings = Settings(data_dir=tmp_path_factory.mktemp("openapi"), jwt_secret="x" * 48)
    # create_app performs no I/O: its resources open in cleanup_ctx, which never runs here.
    return build_openapi(create_app(settings), title="Mercato", version="9.9.9")


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _resolve(document: Document, ref: str) -> Any:
    assert ref.startswith("#/"), f"external ref {ref}"
    node: Any = document
    for part in ref[2:].split("/"):
        assert part in node, f"unresolved {ref}"
        node = node[part]
    return node


def _operations(document: Document) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, op in item.items():
            yield path, method, op


def test_document_header(document: Document) -> None:
    assert document["openapi"] == "3.1.0"
    assert document["info"] == {"title": "Mercato", "version": "9.9.9"}
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }


def test_register_operation(document: Document) -> None:
    op = document["paths"]["/v1/auth/register"]["post"]
    assert op["requestBody"]["required"] is True
    assert op["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RegisterBody"
    }
    assert set(op["responses"]) >= {"201", "409", "422", "503"}
    created = op["responses"]["201"]["content"]["application/json"]["schema"]
    assert created == {"$ref": "#/components/schemas/UserOut"}
    for status in ("409", "422", "503"):
        problem = op["responses"][status]["content"]["application/problem+json"]["schema"]
        assert problem == {"$ref": "#/components/schemas/Problem"}
    assert "security" not in op


def test_register_body_schema_matches_the_wire(document: Document) -> None:
    schema = document["components"]["schemas"]["RegisterBody"]
    assert set(schema["properties"]) == {"email", "password", "name", "role"}
    assert set(schema["required"]) == {"email", "password", "name"}
    assert schema["properties"]["password"]["minLength"] == 8
    assert set(schema["properties"]["role"]["enum"]) == {"buyer", "seller"}
    # Unknown fields are rejected by the model, and the description says so.
    assert schema["additionalProperties"] is False
    user_out = document["components"]["schemas"]["UserOut"]
    assert {"userId", "createdAt"} <= set(user_out["properties"])


def test_login_operation(document: Document) -> None:
    op = document["paths"]["/v1/auth/login"]["post"]
    assert op["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/LoginBody"
    }
    assert op["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TokenOut"
    }
    assert "401" in op["responses"]
    assert "security" not in op


def test_profile_operations_need_a_bearer_token(document: Document) -> None:
    me = document["paths"]["/v1/users/me"]["get"]
    assert me["security"] == [{"bearer": []}]
    assert "401" in me["responses"]
    by_id = document["paths"]["/v1/users/{id}"]["get"]
    assert by_id["security"] == [{"bearer": []}]
    assert by_id["parameters"][0] == {
        "name": "id", "in": "path", "required": True, "schema": {"type": "string"}
    }
    # Sparse fieldsets (#17): the only other parameter.
    assert [p["name"] for p in by_id["parameters"][1:]] == ["fields"]


def test_head_routes_are_not_listed(document: Document) -> None:
    assert all(method != "head" for _, method, _ in _operations(document))


def test_every_ref_resolves_inside_the_document(document: Document) -> None:
    refs = set(_refs(document))
    assert "#/components/schemas/Problem" in refs
    for ref in refs:
        _resolve(document, ref)


def test_operation_ids_are_unique(document: Document) -> None:
    ids = [op["operationId"] for _, _, op in _operations(document)]
    assert len(ids) == len(set(ids))


def test_every_error_response_documents_a_problem(document: Document) -> None:
    for path, method, op in _operations(document):
        for status, response in op["responses"].items():
            assert response["description"], (path, method, status)
            if int(status) >= 400:
                assert "application/problem+json" in response["content"], (path, method, status)


def test_every_json_api_route_is_documented(document: Document) -> None:
    # /v1/ws and /v1/events are streaming upgrades, not request/response operations.
    streaming = {"/v1/ws", "/v1/events"}
    app = create_app(Settings(data_dir=Path("unused"), jwt_secret="x" * 48))
    api_paths = {
        r.resource.canonical
        for r in app.router.routes()
        if r.resource is not None and r.resource.canonical.startswith("/v1/")
    }
    assert api_paths - streaming <= set(document["paths"])


class Thing(BaseModel):
    name: str


@operation("A thing by kind and version", tags=("things",), responses={200: ("Thing", Thing)})
async def thing(request: web.Request) -> web.Response:
    raise NotImplementedError


def test_operation_decorator_attaches_metadata() -> None:
    attached = getattr(thing, OPERATION_ATTR)
    assert isinstance(attached, Operation)
    assert attached.summary == "A thing by kind and version"
    assert attached.auth is False


def test_undecorated_routes_are_left_out() -> None:
    async def plain(request: web.Request) -> web.Response:
        raise NotImplementedError

    app = web.Application()
    app.router.add_get("/plain", plain)
    app.router.add_get("/things/{kind}", thing)
    doc = build_openapi(app, title="t", version="1")
    assert list(doc["paths"]) == ["/things/{kind}"]
    assert doc["components"]["schemas"]["Thing"]["properties"] == {
        "name": {"title": "Name", "type": "string"}
    }


def test_every_path_template_is_declared_as_a_parameter() -> None:
    app = web.Application()
    app.router.add_get("/things/{kind}/v{version}", thing)
    doc = build_openapi(app, title="t", version="1")
    params = doc["paths"]["/things/{kind}/v{version}"]["get"]["parameters"]
    assert {p["name"] for p in params} == {"kind", "version"}


def _docs_app() -> web.Application:
    app = edge_app()
    app[keys.SETTINGS] = Settings(data_dir=Path("unused"), jwt_secret="x" * 48, topic_prefix="d.")
    app.router.add_routes(auth.routes)
    docs.setup(app)
    return app


@pytest.mark.parametrize("path", ["/openapi.json", "/asyncapi.json"])
async def test_published_descriptions_are_served(path: str) -> None:
    async with TestClient(TestServer(_docs_app())) as client:
        resp = await client.get(path)
        assert resp.status == 200
        body = await resp.json()
    assert body.get("openapi") == "3.1.0" or body.get("asyncapi") == "3.0.0"


async def test_event_schema_is_served() -> None:
    async with TestClient(TestServer(_docs_app())) as client:
        resp = await client.get("/schemas/events/user.registered/v1")
        assert resp.status == 200
        assert resp.content_type == "application/schema+json"
        body = await resp.json(content_type="application/schema+json")
        missing = await client.get("/schemas/events/user.registered/v9")
        assert missing.status == 404
        not_a_version = await client.get("/schemas/events/user.registered/vX")
        assert not_a_version.status == 404
    assert body["$id"] == "urn:mercato:event:user.registered.v1"
