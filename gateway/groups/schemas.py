"""Request and response bodies of the /v1/groups endpoints (for validation and OpenAPI)."""

from __future__ import annotations

from pydantic import Field

from gateway.http.responses import Out
from gateway.http.validation import Body

# As user ids are everywhere else (gateway.files.schemas.PermissionBody).
USER_ID = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")


class GroupBody(Body):
    """POST /v1/groups."""

    name: str = Field(min_length=1, max_length=100)


class MemberBody(Body):
    """POST /v1/groups/{id}/members."""

    user_id: str = USER_ID


class GroupOut(Out):
    """A group; ``members`` includes its owner."""

    group_id: str
    name: str
    owner_id: str
    members: list[str]
    created_at: str


class GroupsOut(Out):
    """The groups the caller owns or belongs to, oldest first."""

    data: list[GroupOut]
