"""The registrations agent: decisions, idempotent redelivery, Faust wiring and dead letters."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
from pymongo.errors import AutoReconnect
from redis.exceptions import ConnectionError as RedisConnectionError

from agents.app import create_worker_app
from agents.identity.registrations import RegistrationDecider
from agents.runtime.resilience import guarded
from config import Settings
from stores.users import UserRepository
from streams.envelope import Envelope, derived_id, format_time, new_event
from streams.events.commands import CommandAnswered, CommandExpired
from streams.events.ops import DeadLettered
from streams.events.users import RegistrationRequested, UserRegistered
from tests.support.recording import RecordingEffects, close_unstarted_consumer_loop

NOW = datetime(2024, 5, 17, 12, 0, 0, 250000, tzinfo=UTC)
HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"


class FakeUsers(UserRepository):
    """In-memory users read model: records projections, creates each user once."""

    def __init__(self) -> None:  # no database: deliberately not calling super().__init__
        self.calls: list[dict[str, Any]] = []
        self.created: set[str] = set()

    async def project_registered(
        self,
        *,
        user_id: str,
        email: str,
        email_normalized: str,
        name: str,
        roles: list[str],
        password_hash: str,
        created_at: datetime,
        event_id: str,
    ) -> bool:
        self.calls.append(
            {
                "user_id": user_id,
                "email": email,
                "email_normalized": email_normalized,
                "name": name,
                "roles": roles,
                "password_hash": password_hash,
                "created_at": created_at,
                "event_id": event_id,
            }
        )
        first = user_id not in self.created
        self.created.add(user_id)
        return first


def command(
    *,
    user_id: str = "u-ada",
    email: str = "Ada@Example.com",
    deadline: datetime = NOW + timedelta(seconds=5),
    event_id: str | None = None,
) -> bytes:
    envelope = new_event(
        RegistrationRequested(
            user_id=user_id,
            email=email,
            email_normalized=email.strip().lower(),
            name="Ada Lovelace",
            roles=["buyer"],
            password_hash=HASH,
            deadline=deadline,
            reply_to="gateway-1",
        ),
        key=email.strip().lower(),
        source="gateway/gateway-1",
        event_id=event_id,
        occurred_at=NOW - timedelta(milliseconds=100),
    )
    return envelope.encode()


def _has_secret(value: Any) -> bool:
    blob = orjson.dumps(value).decode().lower()
    return "password" in blob or "hash" in blob or HASH.lower() in blob


def _identity(emitted: list[tuple[str, Envelope]]) -> list[tuple[str, str, str, str, Any]]:
    # A reply's occurredAt is the wall clock at emit time; consumers dedupe on the id.
    return [(t, e.id, e.type, e.key, e.data) for t, e in emitted]


# --- (a) the decider alone -------------------------------------------------------------------


@pytest.fixture
def effects() -> RecordingEffects:
    return RecordingEffects(users=FakeUsers())


@pytest.fixture
def table() -> dict[str, Any]:
    return {}


@pytest.fixture
def decider(table: dict[str, Any], effects: RecordingEffects) -> RegistrationDecider:
    return RegistrationDecider(table=table, effects=effects)


async def test_first_command_is_accepted(
    decider: RegistrationDecider, effects: RecordingEffects, table: dict[str, Any]
) -> None:
    raw = command()
    cmd = Envelope.decode(raw)
    assert await decider.handle(raw, now=NOW) == "accepted"

    assert table == {
        "ada@example.com": {"userId": "u-ada", "commandId": cmd.id, "createdAt": format_time(NOW)}
    }
    [projected] = effects.users.calls
    assert projected["user_id"] == "u-ada"
    assert projected["email_normalized"] == "ada@example.com"
    assert projected["password_hash"] == HASH  # the read model needs it for login
    assert projected["event_id"] == cmd.id
    assert projected["created_at"] == datetime.fromisoformat(format_time(NOW))

    assert [t for t, _ in effects.emitted] == ["users", "replies"]
    [registered] = effects.on("users")
    assert registered.type == "user.registered"
    assert registered.key == "u-ada"
    assert registered.id == derived_id(cmd.id, "user.registered")
    assert registered.causation_id == cmd.id
    assert registered.correlation_id == cmd.correlation_id
    assert not _has_secret(registered.to_dict())
    user = registered.payload(UserRegistered)
    assert (user.user_id, user.email, user.name, user.roles) == (
        "u-ada",
        "Ada@Example.com",
        "Ada Lovelace",
        ["buyer"],
    )

    assert effects.pushed == [("user:u-ada", registered)]

    [reply] = effects.on("replies")
    answer = reply.payload(CommandAnswered)
    assert reply.type == "command.answered"
    assert reply.key == cmd.correlation_id
    assert answer.outcome == "accepted"
    assert answer.command_id == cmd.id
    assert answer.reply_to == "gateway-1"
    assert answer.result["userId"] == "u-ada"
    assert answer.result["createdAt"] == format_time(NOW)
    assert not _has_secret(reply.to_dict())


async def test_same_email_from_another_command_is_rejected(
    decider: RegistrationDecider, effects: RecordingEffects, table: dict[str, Any]
) -> None:
    await decider.handle(command(), now=NOW)
    before = dict(table)
    effects.emitted.clear()
    effects.pushed.clear()

    other = command(user_id="u-mallory", email="  ADA@example.COM ")
    assert await decider.handle(other, now=NOW) == "rejected"

    assert table == before
    assert len(effects.users.calls) == 1
    assert effects.pushed == []
    assert effects.on("users") == []
    [reply] = effects.emitted
    assert reply[0] == "replies"
    answer = reply[1].payload(CommandAnswered)
    assert answer.outcome == "rejected"
    assert answer.code == "EMAIL_TAKEN"
    assert answer.command_id == Envelope.decode(other).id
    assert answer.result == {}


async def test_redelivery_repeats_the_same_effects(
    decider: RegistrationDecider, effects: RecordingEffects, table: dict[str, Any]
) -> None:
    raw = command()
    assert await decider.handle(raw, now=NOW) == "accepted"
    first_emitted = list(effects.emitted)
    first_pushed = list(effects.pushed)
    first_table = {k: dict(v) for k, v in table.items()}

    later = NOW + timedelta(seconds=2)  # still inside the deadline
    assert await decider.handle(raw, now=later) == "accepted"

    assert table == first_table
    assert _identity(effects.emitted) == _identity(first_emitted) * 2
    # The public event is byte-for-byte the same, occurredAt included (it is createdAt).
    assert effects.on("users") == [e for t, e in first_emitted if t == "users"] * 2
    assert effects.pushed == first_pushed * 2
    first_call, second_call = effects.users.calls
    assert first_call == second_call
    assert effects.users.created == {"u-ada"}


async def test_command_past_its_deadline_expires(
    decider: RegistrationDecider, effects: RecordingEffects, table: dict[str, Any]
) -> None:
    raw = command(deadline=NOW - timedelta(milliseconds=1500))
    assert await decider.handle(raw, now=NOW) == "expired"

    assert table == {}
    assert effects.users.calls == []
    assert effects.pushed == []
    [(topic, audit)] = effects.emitted
    assert topic == "audit"
    assert audit.type == "command.expired"
    assert audit.id == derived_id(Envelope.decode(raw).id, "expired")
    expired = audit.payload(CommandExpired)
    assert expired.command_type == "registration.requested"
    assert expired.late_by_ms == 1500
    assert expired.seen_at == NOW
    assert not _has_secret(audit.to_dict())


async def test_expired_beats_taken_for_another_commands_late_copy(
    decider: RegistrationDecider, effects: RecordingEffects
) -> None:
    await decider.handle(command(), now=NOW)
    late = command(user_id="u-2", deadline=NOW - timedelta(seconds=1))
    assert await decider.handle(late, now=NOW) == "expired"
    assert effects.on("audit")[-1].type == "command.expired"


async def test_own_command_redelivered_after_deadline_is_reapplied(
    decider: RegistrationDecider, effects: RecordingEffects, table: dict[str, Any]
) -> None:
    # Crash after the table commit but before the effects: the redelivery must finish the job.
    raw = command(deadline=NOW + timedelta(seconds=1))
    assert await decider.handle(raw, now=NOW) == "accepted"
    first = list(effects.emitted)
    assert await decider.handle(raw, now=NOW + timedelta(minutes=10)) == "accepted"
    assert _identity(effects.emitted) == _identity(first) * 2
    assert effects.on("audit") == []
    assert len(effects.users.calls) == 2
    assert table["ada@example.com"]["createdAt"] == format_time(NOW)


async def test_other_event_types_are_ignored(
    decider: RegistrationDecider, effects: RecordingEffects, table: dict[str, Any]
) -> None:
    stray = new_event(
        UserRegistered(user_id="u", email="e", name="n", roles=["buyer"], created_at=NOW),
        key="u",
        source="tests",
    )
    assert await decider.handle(stray.encode(), now=NOW) == "ignored"
    assert (effects.emitted, effects.pushed, effects.users.calls, table) == ([], [], [], {})


# --- (b) Faust's own harness -----------------------------------------------------------------


async def test_faust_agent_wiring(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, jwt_secret="x" * 48, topic_prefix="u.")
    effects = RecordingEffects(users=FakeUsers())
    worker = create_worker_app(settings, store="memory://", effects=effects)
    raw = command(deadline=datetime.now(UTC) + timedelta(minutes=5))
    rival = command(user_id="u-2", deadline=datetime.now(UTC) + timedelta(minutes=5))
    try:
        async with worker.agents["registrations"].test_context() as agent:
            await agent.put(key=b"ada@example.com", value=raw)
            await agent.put(key=b"ada@example.com", value=raw)  # redelivery
            await agent.put(key=b"ada@example.com", value=rival)
            await agent.put(key=b"ada@example.com", value=b"not json")
    finally:
        close_unstarted_consumer_loop(worker.app)

    cmd_id = Envelope.decode(raw).id
    assert [c["user_id"] for c in effects.users.calls] == ["u-ada", "u-ada"]
    registered = effects.on("users")
    assert len(registered) == 2
    assert registered[0] == registered[1]
    assert registered[0].id == derived_id(cmd_id, "user.registered")
    outcomes = [r.payload(CommandAnswered) for r in effects.on("replies")]
    assert [(o.outcome, o.code) for o in outcomes] == [
        ("accepted", None),
        ("accepted", None),
        ("rejected", "EMAIL_TAKEN"),
    ]
    # guarded() turned the poison record into a dead letter instead of crashing the agent.
    [letter] = [e.payload(DeadLettered) for e in effects.on("dlq")]
    assert letter.agent == "registrations"
    assert letter.topic == "u.registrations"
    assert letter.value == "not json"
    assert letter.error.startswith("EnvelopeError: value is not JSON")
    assert letter.attempts == 1


# --- (c) guarded() ---------------------------------------------------------------------------


@dataclasses.dataclass
class Flaky:
    """A process that fails ``failures`` times with ``error`` before it succeeds."""

    failures: int
    error: Exception
    calls: int = 0

    async def __call__(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error


async def _guard(
    effects: RecordingEffects, process: Flaky, *, offset: int = 7, attempts: int = 5
) -> None:
    await guarded(
        agent="registrations",
        effects=effects,
        topic="u.registrations",
        partition=2,
        offset=offset,
        key=b"ada@example.com",
        value=b'{"broken": \xff}',
        process=process,
        attempts=attempts,
        backoff=0,
    )


async def test_transient_failures_are_retried(effects: RecordingEffects) -> None:
    process = Flaky(2, ConnectionError("broker away"))
    await _guard(effects, process)
    assert process.calls == 3
    assert effects.emitted == []


async def test_permanent_failure_is_dead_lettered_at_once(
    effects: RecordingEffects, caplog: pytest.LogCaptureFixture
) -> None:
    process = Flaky(99, ValueError("bad record"))
    await _guard(effects, process)
    assert process.calls == 1
    [(topic, envelope)] = effects.emitted
    assert topic == "dlq"
    assert envelope.type == "event.dead_lettered"
    assert envelope.key == "u.registrations:2:7"
    letter = envelope.payload(DeadLettered)
    assert letter.attempts == 1
    assert letter.error == "ValueError: bad record"
    assert (letter.topic, letter.partition, letter.offset) == ("u.registrations", 2, 7)
    assert letter.key == "ada@example.com"
    assert letter.value == '{"broken": \ufffd}'
    assert any("gives up" in r.getMessage() for r in caplog.records)


async def test_persistent_transient_failure_is_dead_lettered_after_all_attempts(
    effects: RecordingEffects,
) -> None:
    process = Flaky(99, TimeoutError("mongo slow"))
    await _guard(effects, process, attempts=3)
    assert process.calls == 3
    [(topic, envelope)] = effects.emitted
    assert topic == "dlq"
    letter = envelope.payload(DeadLettered)
    assert letter.attempts == 3
    assert letter.error == "TimeoutError: mongo slow"


@pytest.mark.parametrize("error", [
    AutoReconnect("127.0.0.1:27017: connection refused"),
    RedisConnectionError("Error 111 connecting to 127.0.0.1:6379"),
    KafkaConnectionError("broker away"),
    KafkaTimeoutError(),
])
async def test_an_outage_is_waited_out_whatever_its_length(
    effects: RecordingEffects, error: Exception,
) -> None:
    # A dependency down is not a bad record: dead-lettering it lost accepted orders (#14).
    process = Flaky(20, error)
    await _guard(effects, process, attempts=3)
    assert process.calls == 21
    assert effects.emitted == []


async def test_dead_letter_id_is_deterministic_per_record(effects: RecordingEffects) -> None:
    await _guard(effects, Flaky(99, KeyError("x")))
    await _guard(effects, Flaky(99, KeyError("x")))
    await _guard(effects, Flaky(99, KeyError("x")), offset=8)
    first, again, other = (e for _, e in effects.emitted)
    assert first.id == again.id == derived_id("dlq", "registrations", "u.registrations", "2", "7")
    assert other.id != first.id
