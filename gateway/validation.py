"""Request bodies: parse JSON, validate with a pydantic model, explain every field error."""

from __future__ import annotations

from typing import TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from streams.errors import FieldError, InvalidInput, MalformedRequest

B = TypeVar("B", bound=BaseModel)


class Body(BaseModel):
    """Base of request bodies: camelCase, unknown fields rejected, strings stripped."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        str_strip_whitespace=True,
        frozen=True,
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
    """The validated body, or ``MalformedRequest``/``InvalidInput`` saying what is wrong."""
    if request.content_type != "application/json":
        raise MalformedRequest(
            "send the body as JSON with 'Content-Type: application/json'",
            code="UNSUPPORTED_MEDIA_TYPE",
        )
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
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput("the body has invalid fields", errors=field_errors(exc)) from None
