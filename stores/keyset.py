"""Keyset (seek) pagination filters shared by the read models."""

from __future__ import annotations

from typing import Any


def keyset_after(field: str, position: tuple[Any, str]) -> dict[str, Any]:
    """The filter for documents after ``position`` in ``(field desc, _id desc)`` order."""
    value, ident = position
    return {"$or": [{field: {"$lt": value}}, {field: value, "_id": {"$lt": ident}}]}
