"""The groups agent: limits decided against the read model, redeliveries answered the same."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from agents.groups.decider import GroupsDecider
from stores.groups import Group, GroupRepository
from streams.envelope import Envelope, new_event
from streams.events.commands import CommandAnswered
from streams.events.groups import GroupCreated, GroupMemberAdded, GroupMemberRemoved
from streams.registry import Payload
from tests.support.recording import RecordingEffects

T0 = datetime(2026, 12, 1, tzinfo=UTC)


class FakeGroups:
    """Groups in memory, guarded by event id like ``stores.groups``."""

    def __init__(self) -> None:
        self.groups: dict[str, Group] = {}
        self.events: dict[str, set[str]] = {}

    async def create(self, *, group_id: str, name: str, owner_id: str, at: datetime,
                     event_id: str) -> bool:
        if group_id in self.groups:
            return False
        self.groups[group_id] = Group(group_id, name, owner_id, (owner_id,), at)
        self.events[group_id] = {event_id}
        return True

    async def _change(self, group_id: str, event_id: str, members: tuple[str, ...]) -> None:
        if event_id not in self.events[group_id]:
            self.events[group_id].add(event_id)
            self.groups[group_id] = dataclasses.replace(self.groups[group_id], members=members)

    async def add_member(self, group_id: str, user_id: str, *, event_id: str) -> None:
        await self._change(group_id, event_id, (*self.groups[group_id].members, user_id))

    async def remove_member(self, group_id: str, user_id: str, *, event_id: str) -> None:
        kept = tuple(m for m in self.groups[group_id].members if m != user_id)
        await self._change(group_id, event_id, kept)

    async def get(self, group_id: str) -> Group | None:
        return self.groups.get(group_id)

    async def applied(self, group_id: str, event_id: str) -> bool:
        return event_id in self.events.get(group_id, set())

    async def owned_count(self, owner_id: str) -> int:
        return sum(g.owner_id == owner_id for g in self.groups.values())


def _setup() -> tuple[GroupsDecider, FakeGroups, RecordingEffects]:
    groups = FakeGroups()
    effects = RecordingEffects(repos={GroupRepository: groups})
    return GroupsDecider(effects, max_members=1, per_owner=1), groups, effects


def _command(payload: Payload) -> Envelope:
    return new_event(payload, key=payload.record_key(), source="gateway/g1")


def _answers(effects: RecordingEffects) -> list[tuple[str, str | None]]:
    return [(a.outcome, a.code) for a in
            (e.payload(CommandAnswered) for e in effects.on("replies"))]


async def test_limits_and_rules_are_decided_by_the_agent() -> None:
    decider, groups, effects = _setup()
    create = _command(GroupCreated(group_id="g1", name="Team", owner_id="o", created_at=T0))
    assert await decider.handle(create.encode()) == "created"
    second = _command(GroupCreated(group_id="g2", name="More", owner_id="o", created_at=T0))
    assert await decider.handle(second.encode()) == "rejected"

    def add(user: str, by: str = "o", owner: str = "o") -> Envelope:
        return _command(GroupMemberAdded(group_id="g1", owner_id=owner, user_id=user,
                                         added_by=by, added_at=T0))

    for command in (add("a"), add("a"), add("b"), add("c", by="a"), add("c", owner="x")):
        await decider.handle(command.encode())
    assert _answers(effects) == [
        ("accepted", None), ("rejected", "GROUP_LIMIT_REACHED"), ("accepted", None),
        ("rejected", "ALREADY_MEMBER"), ("rejected", "GROUP_FULL"), ("rejected", "FORBIDDEN"),
        ("rejected", "FORBIDDEN"),
    ]
    assert groups.groups["g1"].members == ("o", "a")


async def test_a_redelivered_change_is_answered_again_and_applied_once() -> None:
    decider, groups, effects = _setup()
    create = _command(GroupCreated(group_id="g1", name="Team", owner_id="o", created_at=T0))
    added = _command(GroupMemberAdded(group_id="g1", owner_id="o", user_id="a", added_by="o",
                                      added_at=T0))
    left = _command(GroupMemberRemoved(group_id="g1", owner_id="o", user_id="a",
                                       removed_by="a", removed_at=T0))
    for command in (create, create, added, added, left, left):
        await decider.handle(command.encode())
    assert _answers(effects) == [("accepted", None)] * 6
    assert groups.groups["g1"].members == ("o",)
    owner_leaves = _command(GroupMemberRemoved(group_id="g1", owner_id="o", user_id="o",
                                               removed_by="o", removed_at=T0))
    assert await decider.handle(owner_leaves.encode()) == "rejected"
