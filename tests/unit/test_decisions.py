"""The decisions ledger (decide once, replay, expiry, trim) and the cause-aware emit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agents.runtime import caused
from agents.runtime.decisions import ClaimDecisions, CommandDecisions, Decisions
from streams.envelope import Envelope, derived_id, new_event
from streams.events.commands import CommandAnswered, CommandExpired
from streams.events.files import FileAudited
from streams.events.notifications import (
    NotificationCreated,
    NotificationReadRequested,
    NotificationUnreadChanged,
)
from tests.support.recording import RecordingEffects

NOW = datetime(2024, 5, 17, 12, 0, tzinfo=UTC)
DEADLINE = NOW + timedelta(seconds=5)
SOURCE = "agents.test"


def command(n: int = 1, *, correlation: str = "req-1") -> Envelope:
    """A gateway-sent command, as the agents receive it."""
    payload = NotificationReadRequested(
        user_id="u-1", notification_id=f"n-{n}", deadline=DEADLINE, reply_to="gw-1"
    )
    return new_event(payload, key="u-1", source="gateway", correlation_id=correlation)


class Decider:
    """Counts its calls; each decision names the command and the state it was taken on."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, entry: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        return {"outcome": "accepted", "call": self.calls, "seen": entry.get("count")}


def count_up(entry: dict[str, Any], decision: dict[str, Any]) -> dict[str, Any]:
    return {**entry, "count": entry["count"] + 1}


async def test_a_command_is_decided_once_and_its_state_stored_beside_the_decision() -> None:
    table: dict[str, Any] = {}
    ledger = Decisions(table, RecordingEffects(), source=SOURCE, keep=8, empty={"count": 0})
    decide, cmd = Decider(), command()

    first = await ledger.once(cmd, decide, key="u-1", deadline=DEADLINE, now=NOW, evolve=count_up)

    assert first is not None
    assert not first.replayed
    assert first.decision == {"outcome": "accepted", "call": 1, "seen": 0}
    assert table["u-1"] == {"count": 1, "decisions": {cmd.id: first.decision}}


async def test_a_replay_returns_the_stored_decision_without_deciding_again() -> None:
    table: dict[str, Any] = {}
    effects = RecordingEffects()
    ledger = Decisions(table, effects, source=SOURCE, keep=8, empty={"count": 0})
    decide, cmd = Decider(), command()
    first = await ledger.once(cmd, decide, key="u-1", deadline=DEADLINE, now=NOW, evolve=count_up)
    stored = dict(table["u-1"])

    # Redelivered after its deadline: it was decided in time, so it is not an expiry.
    late = DEADLINE + timedelta(minutes=1)
    again = await ledger.once(cmd, decide, key="u-1", deadline=DEADLINE, now=late, evolve=count_up)

    assert again is not None
    assert first is not None
    assert again.replayed
    assert again.decision == first.decision
    assert decide.calls == 1
    assert table["u-1"] == stored  # the state did not move a second time
    assert effects.emitted == []


async def test_a_command_seen_after_its_deadline_is_recorded_expired_and_never_decided() -> None:
    table: dict[str, Any] = {}
    effects = RecordingEffects()
    ledger = Decisions(table, effects, source=SOURCE, keep=8)
    decide, cmd = Decider(), command(correlation="req-late")
    late = DEADLINE + timedelta(milliseconds=1500)

    assert await ledger.once(cmd, decide, key="u-1", deadline=DEADLINE, now=late) is None

    assert decide.calls == 0
    assert table == {}
    [(topic, expired)] = effects.emitted
    assert topic == "audit"
    assert expired.type == "command.expired"
    assert expired.id == derived_id(cmd.id, "expired")
    assert expired.key == expired.correlation_id == "req-late"
    assert expired.causation_id == cmd.id
    assert expired.source == SOURCE
    assert expired.data["lateByMs"] == 1500


async def test_an_entry_keeps_only_its_newest_decisions() -> None:
    table: dict[str, Any] = {}
    ledger = Decisions(table, RecordingEffects(), source=SOURCE, keep=3)
    decide = Decider()
    commands = [command(n) for n in range(5)]

    for cmd in commands:
        await ledger.once(cmd, decide, key="u-1", deadline=DEADLINE, now=NOW)

    assert list(table["u-1"]["decisions"]) == [c.id for c in commands[2:]]
    # Past the bound a command is a stranger again: why ``keep`` must outlast redelivery.
    oldest = await ledger.once(commands[0], decide, key="u-1", deadline=DEADLINE, now=NOW)
    assert oldest is not None
    assert not oldest.replayed
    assert list(table["u-1"]["decisions"]) == [c.id for c in (*commands[3:], commands[0])]


async def test_command_decisions_keep_each_decision_as_its_own_entry() -> None:
    table: dict[str, Any] = {}
    ledger = CommandDecisions(table, RecordingEffects(), source=SOURCE)
    decide, cmd = Decider(), command()
    key = f"command:{cmd.id}"

    first = await ledger.once(cmd, decide, key=key, deadline=DEADLINE, now=NOW)
    again = await ledger.once(cmd, decide, key=key, deadline=DEADLINE, now=NOW)

    assert first is not None
    assert again is not None
    assert table == {key: first.decision}
    assert again.replayed
    assert again.decision == first.decision
    assert decide.calls == 1


async def test_claim_decisions_keep_the_claiming_decision_and_store_no_refusal() -> None:
    table: dict[str, Any] = {}
    ledger = ClaimDecisions(table, RecordingEffects(), source=SOURCE)
    owner, other = command(1), command(2)

    async def claim(entry: dict[str, Any]) -> dict[str, Any]:
        return {"outcome": "rejected"} if entry else {"commandId": owner.id, "userId": "u-1"}

    first = await ledger.once(owner, claim, key="ada", deadline=DEADLINE, now=NOW)
    again = await ledger.once(owner, claim, key="ada", deadline=DEADLINE, now=NOW)
    refused = await ledger.once(other, claim, key="ada", deadline=DEADLINE, now=NOW)

    assert first is not None
    assert again is not None
    assert refused is not None
    assert table == {"ada": {"commandId": owner.id, "userId": "u-1"}}  # the layout as before
    assert (again.replayed, again.decision) == (True, first.decision)
    assert (refused.replayed, refused.decision) == (False, {"outcome": "rejected"})


async def test_emit_derives_topic_key_and_ids_from_the_registry_and_the_cause() -> None:
    effects = RecordingEffects()
    cause = command(correlation="req-9")
    at = NOW + timedelta(seconds=1)
    created = NotificationCreated(
        notification_id="n-1", user_id="u-7", type="stock_low", title="t", body="b", created_at=at
    )

    sent = await caused.emit(effects, created, cause=cause, source=SOURCE, at=at)

    [(topic, envelope)] = effects.emitted
    assert topic == "notifications"
    assert envelope == sent
    assert envelope.key == "u-7"  # the registry's key: the payload's userId
    assert envelope.id == derived_id(cause.id, "notification.created")
    assert (envelope.correlation_id, envelope.causation_id) == ("req-9", cause.id)
    assert (envelope.source, envelope.occurred_at) == (SOURCE, "2024-05-17T12:00:01.000Z")


async def test_emit_keys_by_the_payloads_record_key_or_the_causes_correlation_id() -> None:
    effects = RecordingEffects()
    cause = command(correlation="req-3")
    audited = FileAudited(action="delete", actor_id="u-2", file_id="f-1", owner_id="u-1")
    expired = CommandExpired(
        command_id=cause.id, command_type=cause.type, deadline=DEADLINE, seen_at=NOW,
        late_by_ms=0,
    )

    by_actor = await caused.emit(effects, audited, cause=cause, source=SOURCE, name="audit")
    by_request = await caused.emit(effects, expired, cause=cause, source=SOURCE, name="expired")

    assert [topic for topic, _ in effects.emitted] == ["audit", "audit"]
    assert by_actor.key == "u-2"  # "actorId, or 'anonymous'": the audit record's own rule
    assert by_request.key == "req-3"  # the payload cannot know it; its cause does


async def test_emit_takes_a_name_an_id_or_a_key_where_the_registry_cannot_say() -> None:
    effects = RecordingEffects()
    cause = command()
    answer = CommandAnswered(command_id=cause.id, reply_to="gw-1", outcome="accepted")
    unread = NotificationUnreadChanged(user_id="u-1", unread=2, changed_at=NOW)

    named = await caused.emit(
        effects, answer, cause=cause, source=SOURCE, name="answer", key=cause.id
    )
    chosen = caused.event(unread, cause=cause, source=SOURCE, event_id="fixed", key="u-1")

    assert named.id == derived_id(cause.id, "answer")
    assert named.key == cause.id
    assert (chosen.id, chosen.key) == ("fixed", "u-1")
    # "user:{userId}" is the push record's key (the channel), not a field: no guessing.
    with pytest.raises(TypeError, match="names no field"):
        caused.event(unread, cause=cause, source=SOURCE)


async def test_settle_ends_a_command_expired_refused_or_applied_and_a_replay_the_same_way() -> None:
    effects = RecordingEffects()
    ledger = Decisions({}, effects, source=SOURCE, keep=8)
    applied: list[dict[str, Any]] = []

    async def apply(decision: dict[str, Any]) -> None:
        applied.append(decision)

    async def refuse_it(entry: dict[str, Any]) -> dict[str, Any]:
        return {"outcome": "rejected", "code": "NOT_FOUND", "detail": "no such thing"}

    def settle(cmd: Envelope, decide: Any, now: datetime = NOW) -> Any:
        return ledger.settle(cmd, decide, key="u-1", deadline=DEADLINE, now=now,
                             reply_to="gw-1", apply=apply, applied="done")

    late = DEADLINE + timedelta(seconds=1)
    assert await settle(command(1), Decider(), now=late) == "expired"
    assert [e.type for _, e in effects.emitted] == ["command.expired"]

    effects.clear()
    refused = command(2)
    for _ in range(2):  # a redelivery answers the same refusal again, still not applied
        assert await settle(refused, refuse_it) == "rejected"
    answers = effects.of("command.answered")
    assert [(a.data["outcome"], a.data["code"]) for a in answers] == [("rejected", "NOT_FOUND")] * 2
    assert applied == []

    accepted, decide = command(3), Decider()
    assert await settle(accepted, decide) == "done"
    assert await settle(accepted, decide) == "done"
    assert decide.calls == 1
    assert applied == [{"outcome": "accepted", "call": 1, "seen": None}] * 2
