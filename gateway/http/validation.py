"""Request bodies: parse JSON, validate with a pydantic model, explain every field error."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from streams.errors import FieldError, InvalidInput, MalformedRequest, UnsupportedMediaType

B = TypeVar("B", bound=BaseModel)


class Body(BaseModel):
    """Base of request bodies: camelCase, unknown fields rejected, strings stripped.

    Strict JSON types, for every body at once: a number must be a JSON number, a string a
    string, a boolean a boolean (``"quantity": "3"`` or ``true`` is a 422, not 3 or 1).
    Money stays a decimal *string* by the contract, so strictness never meets a float.
    ``parse_body`` reads ``3.0`` as the integer it is, as JSON Schema's ``integer`` does.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        str_strip_whitespace=True,
        frozen=True,
        strict=True,
    )


def field_errors(exc: ValidationError) -> list[FieldError]:
    """pydantic's errors as ``{field, message}`` pairs with dotted camelCase paths."""
    out = []
    for err in exc.errors(include_url=False):
        field = ".".join(str(part) for part in err["loc"]) or "body"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            message = "this field is required"
        elif err["type"] == "extra_forbidden":
            message = "unknown field"
        out.append(FieldError(field, message))
    return out


async def parse_body(request: web.Request, model: type[B]) -> B:
    """The validated body, or ``UnsupportedMediaType``/``MalformedRequest``/``InvalidInput``."""
    if request.content_type != "application/json":
        raise UnsupportedMediaType("send the body as JSON with 'Content-Type: application/json'")
    raw = await request.read()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedRequest(
            f"the body is not valid JSON: {exc.msg}", code="MALFORMED_JSON"
        ) from None
    if not isinstance(data, dict):
        raise InvalidInput(
            "the body must be a JSON object", errors=[FieldError("body", "expected an object")]
        )
    try:
        return model.model_validate(_integral_numbers(data))
    except ValidationError as exc:
        raise InvalidInput("the body has invalid fields", errors=field_errors(exc)) from None


def _integral_numbers(value: Any) -> Any:
    """``value`` with every float of zero fraction as an int: ``3.0`` is the JSON number 3.

    JSON has one number type and the published schemas say ``integer``, which JSON Schema
    defines by value, so strict validation must not tell 3.0 from 3. 3.5 stays a float
    (and is refused where an integer is due); strings are never read as numbers.
    """
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, dict):
        return {key: _integral_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integral_numbers(item) for item in value]
    return value


def query_flag(request: web.Request, name: str, *, default: bool = False) -> bool:
    """A boolean query parameter: ``true``/``false`` (or ``1``/``0``); anything else is a 422.

    Query values are strings by nature, so they are parsed here, once, as strictly as the
    bodies: ``?unread=null`` must not quietly mean ``false``.
    """
    raw = request.query.get(name)
    if raw is None:
        return default
    value = _FLAGS.get(raw.lower())
    if value is None:
        raise InvalidInput(
            "the query has invalid parameters",
            errors=[FieldError(name, "must be true or false")],
        )
    return value


_FLAGS = {"true": True, "1": True, "false": False, "0": False}
