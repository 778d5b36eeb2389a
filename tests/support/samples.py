"""Hypothesis strategies for any event payload, derived from its pydantic fields.

New event types are covered by the schema tests without anyone writing a sample.
"""

from __future__ import annotations

import types
import typing
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st
from pydantic import BaseModel
from pydantic.fields import FieldInfo

# Whole milliseconds: events carry RFC 3339 times with millisecond precision.
MOMENTS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
).map(lambda moment: moment.replace(microsecond=moment.microsecond // 1000 * 1000))
TEXT = st.text(max_size=20)
JSON_SCALARS = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | TEXT
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)


def payloads(model: type[BaseModel]) -> st.SearchStrategy[BaseModel]:
    """Valid instances of ``model``."""
    # The model's signature names fields by alias (camelCase); st.builds must use those names.
    fields = {info.alias or name: _for_field(info) for name, info in model.model_fields.items()}
    return st.builds(model, **fields)


def _for_field(info: FieldInfo) -> st.SearchStrategy[Any]:
    return _for_type(info.annotation, info.metadata)


def _bounds(metadata: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in metadata:
        for name in ("gt", "ge", "lt", "le", "min_length", "max_length", "pattern"):
            value = getattr(item, name, None)
            if value is not None:
                out[name] = value
    return out


def _for_type(annotation: Any, metadata: list[Any]) -> st.SearchStrategy[Any]:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    bounds = _bounds(metadata)
    if origin is typing.Annotated:
        return _for_type(args[0], [*metadata, *args[1:]])
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(_for_type(a, metadata) for a in args))
    if origin is typing.Literal:
        return st.sampled_from(args)
    if origin is list:
        return st.lists(
            _for_type(args[0], []), min_size=bounds.get("min_length", 0), max_size=3
        )
    if origin is dict:
        return st.dictionaries(TEXT, JSON_VALUES, max_size=3)
    if annotation is type(None):
        return st.none()
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return payloads(annotation)
    if annotation is bool:
        return st.booleans()
    if annotation is int:
        low = bounds.get("ge", bounds.get("gt", -1) + 1 if "gt" in bounds else 0)
        high = bounds.get("le", bounds["lt"] - 1 if "lt" in bounds else 10**9)
        return st.integers(low, high)
    if annotation is float:
        low = bounds.get("ge", bounds.get("gt", 0.0))
        high = bounds.get("le", bounds.get("lt", 1e6))
        return st.floats(min_value=low, max_value=high, allow_nan=False, allow_infinity=False)
    if annotation is Decimal:
        return st.decimals(
            min_value=0, max_value=10**6, places=2, allow_nan=False, allow_infinity=False
        )
    if annotation is datetime:
        return MOMENTS
    if annotation is str:
        if "pattern" in bounds:
            return st.from_regex(bounds["pattern"], fullmatch=True)
        return st.text(min_size=bounds.get("min_length", 0), max_size=20)
    if annotation is Any or annotation is object:
        return JSON_VALUES
    raise TypeError(f"no sample strategy for {annotation!r}: extend tests/support/samples.py")


__all__ = ["MOMENTS", "payloads"]
