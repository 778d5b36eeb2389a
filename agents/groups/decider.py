"""Groups: decides each group command against the read model and projects it.

Every group event is keyed by the group's owner, so one agent decides an
owner's groups in order: it counts them against ``groups_per_owner`` and checks
``group_max_members`` against a group's current members with no race, and a
replay applies a group's creation before its members. Every
write is guarded by the event id (``stores.groups``): a redelivered command
finds itself applied and answers the same again. The gateway checks ownership
too, but the decision here is the one that counts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from agents.runtime.effects import Effects
from agents.runtime.replies import reply
from stores.groups import Group, GroupRepository
from streams.envelope import Envelope
from streams.events.groups import GroupCreated, GroupMemberAdded, GroupMemberRemoved

SOURCE = "agents.groups"
GATEWAY_SOURCE = "gateway/"


class Refused(Exception):
    """A command the agent refuses: its stable code and a detail for the caller."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class GroupsDecider:
    """Applies one ``groups`` record and answers the gateway waiting for it."""

    def __init__(self, effects: Effects, *, max_members: int, per_owner: int) -> None:
        self._effects = effects
        self._max_members = max_members
        self._per_owner = per_owner
        self._handlers: dict[str, Callable[[Envelope], Awaitable[Group]]] = {
            "group.created": self._created,
            "group.member_added": self._added,
            "group.member_removed": self._removed,
        }

    @property
    def _groups(self) -> GroupRepository:
        return self._effects.repo(GroupRepository)

    async def handle(self, raw: bytes) -> str:
        """Process one record; returns what happened (for logs and tests)."""
        envelope = Envelope.decode(raw)
        handler = self._handlers.get(envelope.type)
        if handler is None:
            return "ignored"
        try:
            group = await handler(envelope)
        except Refused as refused:
            await self._answer(envelope, "rejected", code=refused.code, detail=refused.detail)
            return "rejected"
        await self._answer(envelope, "accepted", result=group.to_json())
        return envelope.type.removeprefix("group.")

    async def _created(self, envelope: Envelope) -> Group:
        created = envelope.payload(GroupCreated)
        if await self._groups.get(created.group_id) is None:
            if await self._groups.owned_count(created.owner_id) >= self._per_owner:
                raise Refused("GROUP_LIMIT_REACHED",
                              f"a user may own at most {self._per_owner} groups")
            await self._groups.create(
                group_id=created.group_id, name=created.name, owner_id=created.owner_id,
                at=created.created_at, event_id=envelope.id,
            )
        return await self._current(created.group_id)

    async def _added(self, envelope: Envelope) -> Group:
        added = envelope.payload(GroupMemberAdded)
        group = await self._current(added.group_id)
        if await self._groups.applied(group.group_id, envelope.id):
            return group
        # A command naming another owner was keyed to the wrong partition: refused.
        if added.owner_id != group.owner_id or added.added_by != group.owner_id:
            raise Refused("FORBIDDEN", "only the group's owner adds members")
        if added.user_id in group.members:
            raise Refused("ALREADY_MEMBER", "the user is a member already")
        # The owner is a member but not counted against the limit.
        if len(group.members) - 1 >= self._max_members:
            raise Refused("GROUP_FULL", f"a group has at most {self._max_members} members")
        await self._groups.add_member(group.group_id, added.user_id, event_id=envelope.id)
        return await self._current(group.group_id)

    async def _removed(self, envelope: Envelope) -> Group:
        removed = envelope.payload(GroupMemberRemoved)
        group = await self._current(removed.group_id)
        if await self._groups.applied(group.group_id, envelope.id):
            return group
        if removed.owner_id != group.owner_id:
            raise Refused("FORBIDDEN", "the command names another owner than the group's")
        if removed.removed_by not in (group.owner_id, removed.user_id):
            raise Refused("FORBIDDEN", "only the group's owner, or the member leaving, may")
        if removed.user_id == group.owner_id:
            raise Refused("FORBIDDEN", "the owner cannot leave their own group")
        if removed.user_id not in group.members:
            raise Refused("NOT_FOUND", "the user is not a member")
        await self._groups.remove_member(group.group_id, removed.user_id, event_id=envelope.id)
        return await self._current(group.group_id)

    async def _current(self, group_id: str) -> Group:
        group = await self._groups.get(group_id)
        if group is None:
            raise Refused("NOT_FOUND", "no such group")
        return group

    async def _answer(self, envelope: Envelope, outcome: Any, **answer: Any) -> None:
        if envelope.source.startswith(GATEWAY_SOURCE):
            await reply(self._effects, envelope, reply_to=envelope.source[len(GATEWAY_SOURCE):],
                        source=SOURCE, outcome=outcome, **answer)
