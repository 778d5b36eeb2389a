"""The OpenAPI document declares what the edge, the parser and the limiter answer everywhere."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from config import Settings
from gateway.app import create_app
from gateway.catalog.listing_routes import parse_sort
from gateway.docs.openapi import build_openapi, comma_list_pattern
from gateway.http.ratelimit.policies import POLICIES, classify
from stores.product_listing import SORT_FIELDS
from stores.products import etag
from streams.errors import FieldError

Document = dict[str, Any]


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> Document:
    settings = Settings(data_dir=tmp_path_factory.mktemp("openapi"), jwt_secret="x" * 48)
    return build_openapi(create_app(settings), title="Mercato", version="1")


def _operations(document: Document) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, op in item.items():
            yield path, method, op


def _param(op: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in op["parameters"] if p["name"] == name)


def test_every_limited_operation_declares_429_and_its_headers(document: Document) -> None:
    limited = [(p, m, op) for p, m, op in _operations(document)
               if classify(m.upper(), p, POLICIES) is not None]
    assert len(limited) > 30
    for path, method, op in limited:
        refused = op["responses"]["429"]
        assert refused["headers"]["Retry-After"]["required"] is True, (method, path)
        assert "application/problem+json" in refused["content"]
        for response in op["responses"].values():
            assert {"RateLimit-Policy", "X-RateLimit-Limit"} <= set(response["headers"])
    # Exempt routes are not limited, and say nothing of it.
    assert "429" not in document["paths"]["/.well-known/jwks.json"]["get"]["responses"]


def test_every_body_declares_the_parser_answers(document: Document) -> None:
    bodies = [(p, m, op) for p, m, op in _operations(document) if "requestBody" in op]
    assert len(bodies) >= 15
    for path, method, op in bodies:
        assert {"413", "415", "422"} <= set(op["responses"]), (method, path)
        if "application/json" in op["requestBody"]["content"]:
            assert "400" in op["responses"], (method, path)


def test_signed_in_operations_declare_401_and_503(document: Document) -> None:
    for path, _method, op in _operations(document):
        if "security" in op:
            unauthenticated = op["responses"]["401"]
            assert unauthenticated["headers"]["WWW-Authenticate"]["required"] is True
            assert op["responses"]["503"]["headers"]["Retry-After"]["required"] is True, path


def test_the_upload_declares_415_for_a_body_that_is_not_a_form(document: Document) -> None:
    upload = document["paths"]["/v1/files"]["post"]
    assert "multipart/form-data" in upload["responses"]["415"]["description"]
    assert "MALFORMED_MULTIPART" in upload["responses"]["400"]["description"]


def test_cursor_sort_and_email_are_constrained(document: Document) -> None:
    for path, method, op in _operations(document):
        if any(p["name"] == "cursor" for p in op.get("parameters", [])):
            schema = _param(op, "cursor")["schema"]
            assert schema["maxLength"] > 0, (method, path)
            assert schema["pattern"], (method, path)
            assert "400" in op["responses"]
    sort = _param(document["paths"]["/v1/products"]["get"], "sort")["schema"]["pattern"]
    assert re.match(sort, "-createdAt,price")
    assert re.match(sort, "")
    assert not re.match(sort, "password")
    assert not re.match(sort, "price,name,rating,price,name")
    schemas = document["components"]["schemas"]
    for body in ("RegisterBody", "LoginBody", "ResetBody"):
        email = schemas[body]["properties"]["email"]
        assert email["format"] == "email", body
        assert email["pattern"], body


def test_if_match_is_required_where_428_is_answered(document: Document) -> None:
    for path, method, op in _operations(document):
        if "428" in op["responses"]:
            if_match = _param(op, "If-Match")
            assert if_match["required"] is True, (method, path)
            assert re.match(if_match["schema"]["pattern"], etag("p1", 3))
    update = document["paths"]["/v1/products/{product_id}"]["patch"]
    assert "428" in update["responses"]
    assert update["responses"]["200"]["headers"]["ETag"]["required"] is True
    pattern = _param(update, "If-Match")["schema"]["pattern"]
    assert re.match(pattern, f'{etag("p", 1)}, W/{etag("p", 2)}')
    assert re.match(pattern, "*")
    assert not re.match(pattern, "unquoted")


def test_a_sort_the_pattern_allows_is_a_sort_the_listing_reads() -> None:
    pattern = comma_list_pattern(SORT_FIELDS, most=4, descending=True)
    for sort in ("price", "-rating,name", "createdAt,-price,name,rating"):
        errors: list[FieldError] = []
        assert re.match(pattern, sort)
        assert parse_sort(sort, errors)
        assert not errors
