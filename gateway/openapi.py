"""OpenAPI 3.1 built from the routes themselves: each handler declares its operation."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel

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


def operation(
    summary: str,
    *,
    tags: tuple[str, ...],
    responses: Mapping[int, tuple[str, type[BaseModel] | None]],
    body: type[BaseModel] | None = None,
    auth: bool = False,
    parameters: tuple[dict[str, Any], ...] = (),
    body_media: str = "application/json",
) -> Callable[[H], H]:
    """Attach an ``Operation`` to a handler."""

    def attach(handler: H) -> H:
        setattr(
            handler,
            OPERATION_ATTR,
            Operation(summary, tags, body, responses, auth, parameters, body_media),
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
        for status, (description, model) in sorted(op.responses.items()):
            response: dict[str, Any] = {"description": description}
            if model is not None:
                schemas[model.__name__] = _schema(model, schemas)
                response["content"] = {"application/json": {"schema": _ref(model)}}
            elif status >= 400:
                response["content"] = {
                    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                }
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
