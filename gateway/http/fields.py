"""Sparse fieldsets: ``?fields=productId,name`` keeps only those members of each answer.

Names are the wire names (camelCase) of the response model's top-level fields, checked
against the declared model: an unknown one is a 422 ``VALIDATION_ERROR`` naming
``fields``, never silently ignored (a typo would otherwise look like a missing value).
Nested objects (``rating``) are kept or left out whole. In a page, each item of ``data``
is trimmed and ``pagination`` is always there.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, RootModel, create_model

from gateway.docs.openapi import comma_list_pattern
from streams.errors import FieldError, InvalidInput

FIELDS = "fields"


def wire_names(model: type[BaseModel]) -> tuple[str, ...]:
    """The top-level members of ``model`` as they are named on the wire."""
    return tuple(info.alias or name for name, info in model.model_fields.items())


def requested(request: web.Request, model: type[BaseModel]) -> frozenset[str] | None:
    """The members ``?fields=`` asks for (None without it); 422 on an unknown one."""
    raw = request.query.get(FIELDS)
    if raw is None:
        return None
    allowed = wire_names(model)
    names = [part.strip() for part in raw.split(",") if part.strip()]
    unknown = [name for name in names if name not in allowed]
    if unknown or not names:
        what = f"unknown: {', '.join(unknown)}" if unknown else "name at least one"
        raise InvalidInput("the query has invalid parameters", errors=[
            FieldError(FIELDS, f"{what}; fields are {', '.join(allowed)}")
        ])
    return frozenset(names)


def select(doc: Mapping[str, Any], names: frozenset[str] | None) -> dict[str, Any]:
    """``doc`` with only ``names`` (all of it for None)."""
    if names is None:
        return dict(doc)
    return {key: value for key, value in doc.items() if key in names}


def select_page(page: Mapping[str, Any], names: frozenset[str] | None) -> dict[str, Any]:
    """A ``{data, pagination}`` page whose items keep only ``names``."""
    if names is None:
        return dict(page)
    return {**page, "data": [select(item, names) for item in page["data"]]}


def parameter(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI description of ``?fields=`` for answers of ``model``."""
    names = wire_names(model)
    return {
        "name": FIELDS, "in": "query", "required": False,
        "description": "Comma-separated members to keep (sparse fieldset), of: "
        f"{', '.join(names)}. An unknown name is a 422 (VALIDATION_ERROR).",
        "schema": {"type": "string", "pattern": comma_list_pattern(names, most=len(names))},
    }


def _nothing_required(schema: dict[str, Any]) -> None:
    schema.pop("required", None)


@functools.cache
def sparse(model: type[BaseModel]) -> type[BaseModel]:
    """``model`` with every member optional: what a ``?fields=`` answer is."""
    config = ConfigDict(**model.model_config)
    config["json_schema_extra"] = _nothing_required
    return type(f"{model.__name__}Fields", (model,), {
        "__doc__": f"{model.__doc__.rstrip('.') if model.__doc__ else model.__name__}, "
        "trimmed to the members ?fields= asked for.",
        "model_config": config,
    })


def answer(model: type[BaseModel], trimmed: type[BaseModel]) -> type[BaseModel]:
    """The declared answer of an operation with ``?fields=``: whole, or ``trimmed``."""
    root: type[BaseModel] = RootModel[model | trimmed]  # type: ignore[valid-type]
    return type(f"{model.__name__}Answer", (root,), {
        "__doc__": f"{model.__doc__ or model.__name__} (trimmed when ?fields= is sent)",
    })


def page_answer(page: type[BaseModel], item: type[BaseModel]) -> type[BaseModel]:
    """The declared answer of a paginated operation with ``?fields=`` over ``item``s."""
    items: Any = list[sparse(item)]  # type: ignore[misc]
    trimmed: type[BaseModel] = create_model(
        f"{item.__name__}FieldsPage", __base__=page,
        __doc__=f"{page.__doc__ or page.__name__} Items trimmed by ?fields=.",
        data=(items, ...),
    )
    return answer(page, trimmed)
