"""OpenAPI 3.1 built from the routes themselves: each handler declares its operation."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel

from gateway.http.maintenance import covers as under_maintenance
from gateway.http.ratelimit.policies import POLICIES, classify

H = TypeVar("H", bound=Callable[..., Any])
_PATH_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")
OPERATION_ATTR = "__mercato_operation__"


@dataclasses.dataclass(frozen=True, slots=True)
class Operation:
    """What a handler accepts and answers, for the published API description."""

    summary: str
    tags: tuple[str, ...]
    body: type[BaseModel] | None
    responses: Mapping[int, tuple[str, type[BaseModel] | None]]
    auth: bool
    parameters: tuple[dict[str, Any], ...] = ()
    # e.g. multipart/form-data for uploads; the body model then describes the form fields.
    body_media: str = "application/json"
    # Response headers by status, e.g. {200: {"ETag": ETAG_HEADER}}.
    headers: Mapping[int, Mapping[str, dict[str, Any]]] = dataclasses.field(
        default_factory=dict
    )
    # Media types by status besides the JSON model's, e.g. {200: {"text/csv": {}}}: a
    # download or a CSV rendering, which a body model cannot describe.
    content: Mapping[int, Mapping[str, dict[str, Any]]] = dataclasses.field(
        default_factory=dict
    )


def operation(
    summary: str,
    *,
    tags: tuple[str, ...],
    responses: Mapping[int, tuple[str, type[BaseModel] | None]],
    body: type[BaseModel] | None = None,
    auth: bool = False,
    parameters: tuple[dict[str, Any], ...] = (),
    body_media: str = "application/json",
    headers: Mapping[int, Mapping[str, dict[str, Any]]] | None = None,
    content: Mapping[int, Mapping[str, dict[str, Any]]] | None = None,
) -> Callable[[H], H]:
    """Attach an ``Operation`` to a handler."""

    def attach(handler: H) -> H:
        setattr(
            handler,
            OPERATION_ATTR,
            Operation(
                summary, tags, body, responses, auth, parameters, body_media, headers or {},
                content or {},
            ),
        )
        return handler

    return attach


PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "code", "requestId"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "code": {"type": "string", "description": "Stable machine-readable error code."},
        "requestId": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}


def header_spec(description: str, *, required: bool = False, **schema: Any) -> dict[str, Any]:
    """The OpenAPI description of one string response header."""
    return {"description": description, "required": required,
            "schema": {"type": "string", **schema}}


# A strong or weak entity tag, quoted (RFC 9110 section 8.8.3).
ETAG_PATTERN = r'^(W/)?"[\x21\x23-\x7e]*"$'
ETAG_HEADER = header_spec("The entity tag of this version.", required=True, pattern=ETAG_PATTERN)
# ``If-Match``: one or more entity tags, or ``*``.
IF_MATCH_PATTERN = r'^(\*|(W/)?"[\x21\x23-\x7e]*"( *, *(W/)?"[\x21\x23-\x7e]*")*)$'
LOCATION_HEADER = header_spec("Where the created resource is.", required=True)
RETRY_AFTER = header_spec("Seconds to wait before retrying.", required=True, pattern=r"^\d+$")
# Sent on every response of a limited operation while rate limiting is on (not required:
# an operator may switch limiting off, and a Redis outage fails open without them).
RATELIMIT_HEADERS: dict[str, dict[str, Any]] = {
    "RateLimit-Policy": header_spec("The limit of this operation's class (IETF draft)."),
    "RateLimit": header_spec("What is left of it and when it is full again (IETF draft)."),
    "X-RateLimit-Limit": header_spec("Requests per window.", pattern=r"^\d+$"),
    "X-RateLimit-Remaining": header_spec("Requests left now.", pattern=r"^\d+$"),
    "X-RateLimit-Reset": header_spec("Seconds until the bucket is full.", pattern=r"^\d+$"),
}
_WWW_AUTHENTICATE = header_spec("The scheme to authenticate with (Bearer).", required=True)


def comma_list_pattern(words: Iterable[str], *, most: int, descending: bool = False) -> str:
    """The pattern of up to ``most`` comma-separated ``words`` (``-word`` too if descending).

    Words are plain identifiers, written unescaped: OpenAPI patterns are ECMA-262 regexes,
    where an escape such as ``\\-`` is an error.
    """
    alternatives = sorted(words)
    if not all(w.isidentifier() for w in alternatives):
        raise ValueError(f"not plain identifiers: {alternatives}")
    word = f"{'-?' if descending else ''}({'|'.join(alternatives)})"
    return f"^({word}(,{word}){{0,{most - 1}}})?$"


def implied_responses(method: str, path: str, op: Operation) -> dict[int, str]:
    """What the gateway answers for any operation like ``op``, whatever its handler says.

    The edge, the body parser, the authenticator and the rate limiter answer these for
    every route they cover, so every route declares them: a new route gets them for free.
    """
    implied: dict[int, str] = {}
    if op.body is not None:
        implied[413] = "Body over the size limit (PAYLOAD_TOO_LARGE)"
        implied[415] = f"The body is not {op.body_media} (UNSUPPORTED_MEDIA_TYPE)"
        implied[422] = "Invalid fields (VALIDATION_ERROR), each one named"
        if op.body_media == "application/json":
            implied[400] = "The body is not JSON (MALFORMED_JSON)"
    if op.auth:
        implied[401] = "Not signed in, or the token is not valid"
    if path.startswith("/v1/"):
        # Every /v1 operation reads or writes a store; one that is down is a 503
        # (gateway.http.boundary.STORE_OUTAGES), whatever the handler declares besides.
        implied[503] = "A backing store (Redis, MongoDB or the broker) did not answer; retry"
    if any(p.get("in") == "query" for p in op.parameters):
        implied[422] = "Invalid query parameters (VALIDATION_ERROR), each one named"
    if any(p.get("name") == "cursor" for p in op.parameters):
        implied[400] = "The cursor was not issued by this API (INVALID_CURSOR)"
    if any(p.get("name") == "If-Match" for p in op.parameters):
        malformed = "If-Match is not * or entity tags (MALFORMED_REQUEST)"
        implied[400] = f"{implied[400]}, or {malformed}" if 400 in implied else malformed
    if classify(method, path, POLICIES) is not None:
        implied[429] = "Rate limited (RATE_LIMITED); retry after Retry-After seconds"
    return implied


def _response_headers(
    status: int, op: Operation, limited: bool
) -> dict[str, dict[str, Any]]:
    headers: dict[str, dict[str, Any]] = dict(RATELIMIT_HEADERS) if limited else {}
    if status in (429, 503):
        headers["Retry-After"] = RETRY_AFTER
    if status == 401:
        headers["WWW-Authenticate"] = _WWW_AUTHENTICATE
    headers.update(op.headers.get(status, {}))
    return headers


def build_openapi(app: web.Application, *, title: str, version: str) -> dict[str, Any]:
    """The OpenAPI document of every route that declared an ``Operation``."""
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {"Problem": PROBLEM_SCHEMA}
    for route in app.router.routes():
        op: Operation | None = getattr(route.handler, OPERATION_ATTR, None)
        if op is None or route.method == "HEAD":
            continue
        path = route.resource.canonical if route.resource is not None else ""
        item: dict[str, Any] = {
            "summary": op.summary,
            "tags": list(op.tags),
            "operationId": getattr(route.handler, "__name__", path),
            "responses": {},
        }
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _PATH_PARAM.findall(path)
        ]
        params.extend(op.parameters)
        if params:
            item["parameters"] = params
        if op.auth:
            item["security"] = [{"bearer": []}]
        if op.body is not None:
            schemas[op.body.__name__] = _schema(op.body, schemas)
            item["requestBody"] = {
                "required": True,
                "content": {op.body_media: {"schema": _ref(op.body)}},
            }
        declared: dict[int, tuple[str, type[BaseModel] | None]] = {
            status: (text, None)
            for status, text in implied_responses(route.method, path, op).items()
        }
        declared.update(op.responses)
        if under_maintenance(route.method, path):
            # Added to whatever the handler says its 503 means: the edge answers this one.
            text, model = declared[503]
            declared[503] = (f"{text}; or maintenance mode is on (MAINTENANCE)", model)
        limited = classify(route.method, path, POLICIES) is not None
        for status, (description, model) in sorted(declared.items()):
            response: dict[str, Any] = {"description": description}
            if headers := _response_headers(status, op, limited):
                response["headers"] = headers
            if model is not None:
                schemas[model.__name__] = _schema(model, schemas)
                response["content"] = {"application/json": {"schema": _ref(model)}}
            elif status >= 400:
                response["content"] = {
                    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                }
            if extra := op.content.get(status):
                response["content"] = {**response.get("content", {}), **extra}
            item["responses"][str(status)] = response
        paths.setdefault(path, {})[route.method.lower()] = item
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _schema(model: type[BaseModel], schemas: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
    schemas.update(schema.pop("$defs", {}))
    return schema
