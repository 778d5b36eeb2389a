"""Response bodies every domain shares: the camelCase base and the pagination block."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class Out(BaseModel):
    """Base of response bodies: camelCase on the wire."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class PaginationOut(Out):
    """Where the next page starts."""

    # What gateway.http.pagination.page_response puts under "pagination", every field always.
    limit: int
    has_more: bool
    next_cursor: str | None
