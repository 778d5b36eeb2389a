"""Request bodies: every malformed or invalid body is a precise 4xx problem, never a 500."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from gateway.http.problems import PROBLEM_JSON
from gateway.http.validation import field_errors, parse_body, query_flag
from gateway.identity.schemas import RegisterBody, normalise_email
from streams.errors import InvalidInput
from tests.support.edge import edge_app

Client = TestClient[web.Request, web.Application]
VALID = {"email": "ada@example.com", "password": "correct horse battery", "name": "Ada"}


async def register(request: web.Request) -> web.Response:
    body = await parse_body(request, RegisterBody)
    return web.json_response(body.model_dump(by_alias=True, exclude={"password"}), status=201)


def make_app() -> web.Application:
    app = edge_app()
    app.router.add_post("/register", register)
    return app


# Module scope: the hypothesis tests reuse one server instead of one per example.
@pytest.fixture(scope="module")
async def client() -> AsyncIterator[Client]:
    async with TestClient(TestServer(make_app())) as test_client:
        yield test_client


async def _problem(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status == status
    assert resp.content_type == PROBLEM_JSON
    body: dict[str, Any] = await resp.json(content_type=PROBLEM_JSON)
    assert body["code"] == code
    assert body["status"] == status
    return body


def _errors(body: dict[str, Any]) -> dict[str, str]:
    return {e["field"]: e["message"] for e in body["errors"]}


async def test_valid_body_is_parsed_and_stripped(client: Client) -> None:
    resp = await client.post("/register", json={**VALID, "name": "  Ada  ", "role": "seller"})
    assert resp.status == 201
    assert await resp.json() == {"email": "ada@example.com", "name": "Ada", "role": "seller"}


async def test_charset_parameter_is_fine(client: Client) -> None:
    resp = await client.post(
        "/register",
        data=json.dumps(VALID).encode(),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert resp.status == 201


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
async def test_wrong_content_type(client: Client, content_type: str) -> None:
    resp = await client.post(
        "/register", data=json.dumps(VALID), headers={"Content-Type": content_type}
    )
    body = await _problem(resp, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert "application/json" in body["detail"]


@pytest.mark.parametrize("raw", [b"{", b"", b"{'a': 1}", b"\xff", b"NaN"])
async def test_invalid_json(client: Client, raw: bytes) -> None:
    resp = await client.post("/register", data=raw, headers={"Content-Type": "application/json"})
    body = await _problem(resp, 400, "MALFORMED_JSON")
    assert body["detail"].startswith("the body is not valid JSON")


@pytest.mark.parametrize("value", [[], [VALID], "text", 1, None])
async def test_json_that_is_not_an_object(client: Client, value: object) -> None:
    # Sent as bytes: aiohttp's ``json=None`` would send no body at all.
    resp = await client.post(
        "/register", data=json.dumps(value).encode(), headers={"Content-Type": "application/json"}
    )
    body = await _problem(resp, 422, "VALIDATION_ERROR")
    assert body["errors"] == [{"field": "body", "message": "expected an object"}]


async def test_missing_fields_are_each_named(client: Client) -> None:
    body = await _problem(await client.post("/register", json={}), 422, "VALIDATION_ERROR")
    assert _errors(body) == {
        "email": "this field is required",
        "password": "this field is required",
        "name": "this field is required",
    }


async def test_unknown_field(client: Client) -> None:
    resp = await client.post("/register", json={**VALID, "isAdmin": True})
    body = await _problem(resp, 422, "VALIDATION_ERROR")
    assert _errors(body) == {"isAdmin": "unknown field"}


async def test_bad_email(client: Client) -> None:
    resp = await client.post("/register", json={**VALID, "email": "not-an-email"})
    body = await _problem(resp, 422, "VALIDATION_ERROR")
    assert _errors(body) == {"email": "not a valid email address"}


async def test_several_bad_fields_are_reported_together(client: Client) -> None:
    resp = await client.post(
        "/register", json={"email": "a@b.co", "password": "short", "name": "", "role": "admin"}
    )
    body = await _problem(resp, 422, "VALIDATION_ERROR")
    assert set(_errors(body)) == {"password", "name", "role"}


def test_field_errors_use_dotted_camel_case_paths() -> None:
    with pytest.raises(ValidationError) as caught:
        RegisterBody.model_validate({**VALID, "email": 5, "extraThing": 1})
    errors = {(e.field, e.message) for e in field_errors(caught.value)}
    assert ("extraThing", "unknown field") in errors
    assert any(field == "email" for field, _ in errors)
    assert all(not message.startswith("Value error") for _, message in errors)


# Arbitrary JSON: huge ints, NaN (invalid JSON once dumped), lone surrogates and deep nesting.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
register_like = st.fixed_dictionaries(
    {},
    optional={
        "email": json_values | st.emails(),
        "password": json_values | st.text(min_size=8),
        "name": json_values,
        "role": json_values | st.sampled_from(["buyer", "seller"]),
        "extra": json_values,
    },
)


async def _never_500(client: Client, data: bytes, content_type: str) -> None:
    resp = await client.post("/register", data=data, headers={"Content-Type": content_type})
    assert resp.status in {201, 400, 415, 422}, (resp.status, await resp.text())
    if resp.status != 201:
        assert resp.content_type == PROBLEM_JSON
        body = await resp.json(content_type=PROBLEM_JSON)
        assert body["status"] == resp.status


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=json_values | register_like)
async def test_arbitrary_json_is_never_a_500(client: Client, value: Any) -> None:
    await _never_500(client, json.dumps(value).encode("utf-8", "surrogatepass"), "application/json")


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.binary(max_size=300),
    content_type=st.sampled_from(["application/json", "text/plain", "application/octet-stream"]),
)
async def test_arbitrary_bytes_are_never_a_500(
    client: Client, data: bytes, content_type: str
) -> None:
    await _never_500(client, data, content_type)


@pytest.mark.parametrize(
    "variant",
    [
        "ada@example.com",
        "ADA@EXAMPLE.COM",
        "  Ada@Example.com\t",
        "\u00a0ada@example.com\n",  # NBSP: NFKC makes it a space, then it is trimmed
        "\uff41\uff44\uff41@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.\uff43\uff4f\uff4d",
        "ａｄａ＠ｅｘａｍｐｌｅ．ｃｏｍ",  # fullwidth @ and . fold too  # noqa: RUF001
    ],
)
def test_normalise_email_equivalents(variant: str) -> None:
    assert normalise_email(variant) == "ada@example.com"


def test_normalise_email_keeps_distinct_addresses_distinct() -> None:
    assert normalise_email("ada@example.com") != normalise_email("ada2@example.com")
    assert normalise_email("ada@example.com") != normalise_email("ada@example.org")


@given(st.emails())
def test_normalise_email_is_idempotent(email: str) -> None:
    once = normalise_email(email)
    assert normalise_email(once) == once
    assert normalise_email(email.upper()) == normalise_email(email.lower())


@pytest.mark.parametrize(
    ("query", "expected"),
    [("", False), ("?unread=true", True), ("?unread=TRUE", True), ("?unread=1", True),
     ("?unread=false", False), ("?unread=0", False)],
)
def test_query_flags_read_true_and_false(query: str, expected: bool) -> None:
    request = make_mocked_request("GET", f"/v1/notifications{query}")
    assert query_flag(request, "unread") is expected


@pytest.mark.parametrize("value", ["null", "", "yes", "tru", "2"])
def test_any_other_query_flag_is_a_422_naming_it(value: str) -> None:
    request = make_mocked_request("GET", f"/v1/notifications?unread={value}")
    with pytest.raises(InvalidInput) as raised:
        query_flag(request, "unread")
    assert [e.field for e in raised.value.errors] == ["unread"]
