"""Malformed bodies on every auth endpoint: never a 500, always a problem with a stable code.

The endpoints come from the generated OpenAPI document (built from the routes, exactly as
``GET /openapi.json`` serves it), so new ``POST /v1/auth/*`` routes are fuzzed without
touching this file. The rate limiter is off here: with the auth burst of 5, nearly every
example would be refused with 429 before its body is read, and the parser would go
untested (429s are problem+json too; tests/integration/test_ratelimit.py covers them).
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from config import Settings
from gateway.app import MAX_BODY, create_app
from gateway.docs.openapi import build_openapi
from gateway.docs.pages import API_VERSION
from mercato.embedded import Endpoints
from streams.admin import ensure_topics
from tests.conftest import TEST_JWT_SECRET, make_settings
from tests.support.http import gateway_client

pytestmark = pytest.mark.integration
Client = TestClient[web.Request, web.Application]
Body = tuple[str | None, bytes]
CODE = re.compile(r"^[A-Z][A-Z0-9_]*$")


def _openapi() -> dict[str, Any]:
    # create_app performs no I/O, so the document can be built at collection time.
    app = create_app(Settings(jwt_secret=TEST_JWT_SECRET))
    return build_openapi(app, title="Mercato", version=API_VERSION)


OPENAPI = _openapi()
AUTH_PATHS = sorted(p for p, item in OPENAPI["paths"].items()
                    if p.startswith("/v1/auth/") and "post" in item)


def _request_schema(path: str) -> dict[str, Any]:
    body = OPENAPI["paths"][path]["post"].get("requestBody")
    if body is None:
        return {}
    ref: str = body["content"]["application/json"]["schema"]["$ref"]
    schema: dict[str, Any] = OPENAPI["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    return schema


scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12,
)
huge_strings = st.builds(lambda ch, n: ch * n, st.characters(), st.integers(1_000, 200_000))
WRONG_BY_TYPE: dict[str, st.SearchStrategy[Any]] = {
    "string": st.none() | st.booleans() | st.integers() | st.lists(scalars, max_size=3)
    | st.dictionaries(st.text(max_size=5), scalars, max_size=3) | huge_strings,
    "integer": st.text() | st.floats() | st.lists(scalars, max_size=3) | st.booleans(),
    "boolean": st.text() | st.integers() | st.none(),
    "array": scalars | st.dictionaries(st.text(max_size=5), scalars, max_size=3),
    "object": scalars | st.lists(scalars, max_size=3),
}


def _field(prop: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Mostly wrong values for a property, sometimes plausible ones (so deeper code runs)."""
    kind = prop.get("type", "string")
    plausible: st.SearchStrategy[Any] = (
        st.sampled_from(prop["enum"]) if "enum" in prop else st.text(max_size=300)
    )
    return WRONG_BY_TYPE.get(kind, json_values) | json_values | plausible


def _typed_objects(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    props: dict[str, Any] = schema.get("properties", {})
    known = st.fixed_dictionaries({}, optional={k: _field(v) for k, v in props.items()})
    extra = st.dictionaries(st.text(max_size=12), json_values, max_size=2)
    return st.builds(lambda a, b: {**b, **a}, known, extra)


def bodies(schema: dict[str, Any]) -> st.SearchStrategy[Body]:
    """Every kind of malformed body, with the content type it is sent as."""
    # stdlib json: it also writes integers beyond 64 bits, which orjson refuses to.
    as_json = st.one_of(json_values, _typed_objects(schema)).map(
        lambda v: ("application/json", json.dumps(v).encode())
    )
    content_types = st.sampled_from([
        None, "", "text/plain", "application/x-www-form-urlencoded", "application/xml",
        "multipart/form-data; boundary=x", "application/json; charset=latin-1",
        "application/problem+json", "application/json/../x",
    ])
    raw = st.binary(max_size=300) | st.just(b"") | st.just(b"\xff\xfe{}") | st.just(
        b'{"email": "\\ud800", "password": "\\udfff"}'
    )
    return st.one_of(
        as_json,
        st.tuples(st.just("application/json"), raw),
        st.tuples(content_types, raw | as_json.map(lambda b: b[1])),
    )


@pytest.fixture(scope="module")
async def client(
    stack: Endpoints, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Client]:
    """A gateway without a worker (valid bodies answer 503) and without rate limits."""
    env = dataclasses.replace(
        make_settings(stack, tmp_path_factory.mktemp("fuzz")),
        rate_limit_enabled=False,
        command_timeout=0.5,
    )
    await ensure_topics(env)
    async with gateway_client(env) as c:
        yield c


async def assert_problem_if_error(response: Any) -> None:
    """The response's contract: no 500; errors are problem+json with a stable code."""
    text = await response.text()
    assert response.status != 500, text
    assert response.status < 500 or response.status == 503, text
    if response.status >= 400:
        assert response.content_type == "application/problem+json", text
        problem = orjson.loads(text)
        assert CODE.match(problem["code"]), problem
        assert problem["status"] == response.status


async def test_the_served_document_lists_the_fuzzed_endpoints(client: Client) -> None:
    served = await (await client.get("/openapi.json")).json()
    assert sorted(p for p, item in served["paths"].items()
                  if p.startswith("/v1/auth/") and "post" in item) == AUTH_PATHS
    assert {"/v1/auth/login", "/v1/auth/register"} <= set(AUTH_PATHS)


@pytest.mark.parametrize("path", AUTH_PATHS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
async def test_malformed_bodies_get_problems_never_500(
    client: Client, path: str, data: st.DataObject
) -> None:
    content_type, body = data.draw(bodies(_request_schema(path)), label="body")
    headers = {} if content_type is None else {"Content-Type": content_type}
    skip = ["Content-Type"] if content_type is None else []
    # A stream, not bytes: aiohttp warns (an error here) about large raw bodies.
    response = await client.post(
        path, data=io.BytesIO(body), headers=headers, skip_auto_headers=skip
    )
    event(f"status {response.status}")  # --hypothesis-show-statistics: what was reached
    await assert_problem_if_error(response)


@pytest.mark.parametrize("path", AUTH_PATHS)
async def test_bodies_over_the_limit_get_413_problems(client: Client, path: str) -> None:
    body = b'{"email": "' + b"a" * MAX_BODY + b'"}'
    response = await client.post(
        path, data=io.BytesIO(body), headers={"Content-Type": "application/json"}
    )
    assert response.status == 413
    await assert_problem_if_error(response)
