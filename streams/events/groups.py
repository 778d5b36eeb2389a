"""Group events on ``groups`` and the file grants to groups on ``files``.

Groups exist for file sharing: an owner creates one, adds and removes members,
and grants files to it. The gateway publishes each change as a command the
groups agent decides (limits, membership) and projects before answering. Every
group event is keyed by the group's owner, so one agent decides an owner's
groups in order (their count against the limit, a group's creation before its
members), live and when a rebuild replays the topic. A
grant to a group names the group, never a copy of its members, so a member
removed loses access on the next request (``gateway.files.access``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from streams.commands import FILES, GROUPS
from streams.registry import Command, event


@event(
    "group.created",
    topic="groups",
    key="ownerId",
    summary="A user created a group; its owner is its first member.",
    answers=GROUPS,
)
class GroupCreated(Command):
    """Public: the owner is the group's first member."""

    group_id: str
    name: str = Field(min_length=1, max_length=100)
    owner_id: str
    created_at: datetime


@event(
    "group.member_added",
    topic="groups",
    key="ownerId",
    summary="The group's owner added a member.",
    answers=GROUPS,
)
class GroupMemberAdded(Command):
    """Public: refused when the group is full or the user is a member already."""

    group_id: str
    owner_id: str = Field(description="The group's owner: the record key.")
    user_id: str
    added_by: str
    added_at: datetime


@event(
    "group.member_removed",
    topic="groups",
    key="ownerId",
    summary="A member left or was removed; files granted to the group are no longer theirs.",
    answers=GROUPS,
)
class GroupMemberRemoved(Command):
    """Public: takes effect for the member's next request once projected."""

    group_id: str
    owner_id: str = Field(description="The group's owner: the record key.")
    user_id: str
    removed_by: str
    removed_at: datetime


@event(
    "file.group_granted",
    topic="files",
    key="fileId",
    summary="Every member of a group may now read a file, while a member.",
    answers=FILES,
)
class FileGroupGranted(Command):
    """Public: granted by the file's owner or an admin."""

    file_id: str
    group_id: str
    access: Literal["read"] = "read"
    source: Literal["owner", "admin"]
    granted_by: str
    granted_at: datetime


@event(
    "file.group_revoked",
    topic="files",
    key="fileId",
    summary="A group's members may no longer read a file through the group.",
    answers=FILES,
)
class FileGroupRevoked(Command):
    """Public: takes effect for the next request once projected."""

    file_id: str
    group_id: str
    revoked_by: str
    revoked_at: datetime
