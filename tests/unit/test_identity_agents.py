"""The users, notifications and audit agents: decisions, idempotent redelivery, Faust wiring."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from agents.app import create_worker_app
from agents.audit.decider import AuditDecider
from agents.identity.users import UsersDecider
from agents.notifications.decider import NotificationsDecider
from agents.notifications.sinks import FileSink, LogSink
from config import Settings
from stores.audit import AuditEntry, AuditRepository
from stores.notifications import Notification, NotificationRepository
from stores.users import User
from streams.envelope import Envelope, derived_id, new_event
from streams.events.audit import LoginFailed
from streams.events.commands import CommandAnswered
from streams.events.notifications import (
    MessageRequested,
    NotificationDeleteRequested,
    NotificationReadAllRequested,
    NotificationReadRequested,
)
from streams.events.users import (
    PasswordChangeRequested,
    ProfileUpdateRequested,
    RolesChangeRequested,
)
from tests.support.recording import RecordingEffects, close_unstarted_consumer_loop

NOW = datetime(2024, 5, 17, 12, 0, 0, 250000, tzinfo=UTC)
LATER = NOW + timedelta(seconds=2)


class FakeUsers:
    """In-memory users read model with the same version guard as MongoDB's."""

    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.writes = 0
        self.lookups = 0

    def add(self, user_id: str, *, roles: tuple[str, ...] = ("buyer",)) -> None:
        self.docs[user_id] = {"email": f"{user_id}@example.com", "name": "Ada", "roles": roles,
                              "createdAt": NOW, "version": 1, "passwordHash": "h0"}

    async def by_id(self, user_id: str) -> User | None:
        doc = self.docs.get(user_id)
        if doc is None:
            return None
        return User(user_id, doc["email"], doc["name"], tuple(doc["roles"]), doc["createdAt"],
                    doc.get("address"), doc["version"])

    async def emails(self, user_ids: list[str]) -> dict[str, str]:
        self.lookups += 1
        return {u: self.docs[u]["email"] for u in user_ids if u in self.docs}

    async def apply_change(
        self, user_id: str, *, version: int, changes: dict[str, Any],
        removals: tuple[str, ...] = (), command_id: str, at: datetime,
    ) -> bool:
        doc = self.docs.get(user_id)
        if doc is None or doc["version"] >= version:
            return False
        doc.update(changes, version=version, updatedAt=at, lastCommandId=command_id)
        for field in removals:
            doc.pop(field, None)
        self.writes += 1
        return True


class FakeNotifications:
    """In-memory notifications read model."""

    def __init__(self) -> None:
        self.docs: dict[str, Notification] = {}
        self.counts = 0

    async def create(self, notification: Notification) -> bool:
        if notification.notification_id in self.docs:
            return False
        self.docs[notification.notification_id] = notification
        return True

    async def owned(self, user_id: str, notification_id: str) -> Notification | None:
        found = self.docs.get(notification_id)
        return found if found is not None and found.user_id == user_id else None

    async def unread_count(self, user_id: str) -> int:
        self.counts += 1
        return self.unread(user_id)

    def unread(self, user_id: str) -> int:
        """The count, as the test sees it (not counted as the agent's query)."""
        return sum(1 for n in self.docs.values() if n.user_id == user_id and not n.read)

    async def mark_all_read(self, user_id: str, *, up_to: datetime) -> None:
        for note in list(self.docs.values()):
            if note.user_id == user_id and note.created_at <= up_to:
                self.docs[note.notification_id] = dataclasses.replace(note, read=True)

    async def mark_read(self, user_id: str, notification_id: str) -> None:
        if await self.owned(user_id, notification_id):
            self.docs[notification_id] = dataclasses.replace(
                self.docs[notification_id], read=True
            )

    async def delete(self, user_id: str, notification_id: str) -> None:
        if await self.owned(user_id, notification_id):
            del self.docs[notification_id]


class FakeAudit:
    """Append-only, keyed by event id, like the MongoDB collection."""

    def __init__(self) -> None:
        self.entries: dict[str, AuditEntry] = {}

    async def append(self, entry: AuditEntry) -> bool:
        if entry.entry_id in self.entries:
            return False
        self.entries[entry.entry_id] = entry
        return True


class IdentityEffects(RecordingEffects):
    """The recording effects over in-memory users, notifications and audit entries."""

    def __init__(self) -> None:
        self.fake_users = FakeUsers()
        super().__init__(
            users=self.fake_users,
            repos={NotificationRepository: FakeNotifications(), AuditRepository: FakeAudit()},
        )

    def answers(self) -> list[CommandAnswered]:
        return [e.payload(CommandAnswered) for e in self.on("replies")]


class RecordingSink:
    """A sink that remembers deliveries."""

    def __init__(self) -> None:
        self.delivered: list[dict[str, Any]] = []

    async def deliver(self, message: dict[str, Any]) -> None:
        self.delivered.append(message)


@pytest.fixture
def effects() -> IdentityEffects:
    fx = IdentityEffects()
    fx.fake_users.add("u-1")
    return fx


def _common(deadline: datetime = NOW + timedelta(seconds=5)) -> dict[str, Any]:
    return {"user_id": "u-1", "actor_id": "u-1", "deadline": deadline, "reply_to": "gw-1"}


def _raw(payload: Any, *, key: str = "u-1") -> bytes:
    return new_event(payload, key=key, source="tests").encode()


# --- users ------------------------------------------------------------------------------------


async def test_profile_update_is_applied_once_even_when_redelivered(
    effects: IdentityEffects,
) -> None:
    table: dict[str, Any] = {}
    decider = UsersDecider(table, effects)
    raw = _raw(ProfileUpdateRequested(name="Ada L.", **_common()))
    assert await decider.handle(raw, now=NOW) == "accepted"
    doc = effects.fake_users.docs["u-1"]
    assert (doc["name"], doc["version"]) == ("Ada L.", 2)
    first = list(effects.emitted)

    assert await decider.handle(raw, now=LATER) == "accepted"
    assert effects.fake_users.writes == 1
    assert doc["version"] == 2
    # Same ids, same payloads: consumers see a duplicate, not a second change.
    assert [(t, e.id, e.data) for t, e in effects.emitted] == [
        (t, e.id, e.data) for t, e in first
    ] * 2
    [changed, _] = effects.on("users")
    assert changed.type == "user.profile_updated"
    assert changed.data["version"] == 2
    assert changed.data["changed"] == ["name"]
    assert effects.answers()[0].result["name"] == "Ada L."


async def test_roles_and_password_changes_bump_versions_and_keep_secrets_internal(
    effects: IdentityEffects,
) -> None:
    decider = UsersDecider({}, effects)
    roles_command = RolesChangeRequested(roles=["seller", "buyer"], **_common())
    await decider.handle(_raw(roles_command), now=NOW)
    await decider.handle(
        _raw(PasswordChangeRequested(password_hash="$argon2id$new", reason="reset", **_common())),
        now=NOW,
    )
    doc = effects.fake_users.docs["u-1"]
    assert (doc["roles"], doc["passwordHash"], doc["version"]) == (
        ["buyer", "seller"], "$argon2id$new", 3
    )
    roles, password = effects.on("users")
    assert roles.type == "user.roles_changed"
    assert (roles.data["roles"], roles.data["previousRoles"]) == (["buyer", "seller"], ["buyer"])
    assert password.type == "user.password_changed"
    assert password.data["reason"] == "reset"
    assert "argon2" not in orjson.dumps([e.to_dict() for _, e in effects.emitted]).decode()


async def test_stale_expected_version_and_unknown_user_are_rejected(
    effects: IdentityEffects,
) -> None:
    decider = UsersDecider({}, effects)
    rehash = PasswordChangeRequested(
        password_hash="h-late", reason="rehash", expected_version=0, **_common()
    )
    assert await decider.handle(_raw(rehash), now=NOW) == "rejected"
    ghost = RolesChangeRequested(roles=["admin"], **{**_common(), "user_id": "ghost"})
    assert await decider.handle(_raw(ghost, key="ghost"), now=NOW) == "rejected"
    assert [(a.outcome, a.code) for a in effects.answers()] == [
        ("rejected", "VERSION_CONFLICT"),
        ("rejected", "NOT_FOUND"),
    ]
    assert effects.fake_users.writes == 0
    assert effects.on("users") == []


async def test_user_command_past_its_deadline_expires(effects: IdentityEffects) -> None:
    decider = UsersDecider({}, effects)
    late = _raw(ProfileUpdateRequested(name="x", **_common(NOW - timedelta(seconds=1))))
    assert await decider.handle(late, now=NOW) == "expired"
    [audit] = effects.on("audit")
    assert audit.type == "command.expired"
    assert effects.fake_users.writes == 0


async def test_users_agent_in_faust(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, jwt_secret="x" * 48, topic_prefix="u.")
    fx = IdentityEffects()
    fx.fake_users.add("u-1")
    worker = create_worker_app(settings, store="memory://", effects=fx)
    deadline = datetime.now(UTC) + timedelta(minutes=5)
    raw = _raw(ProfileUpdateRequested(name="Faust", **_common(deadline)))
    try:
        async with worker.agents["users"].test_context() as agent:
            await agent.put(key=b"u-1", value=raw)
            await agent.put(key=b"u-1", value=raw)  # redelivery
            await agent.put(key=b"u-1", value=b"not json")
    finally:
        close_unstarted_consumer_loop(worker.app)
    assert fx.fake_users.docs["u-1"]["version"] == 2
    assert fx.fake_users.writes == 1
    assert [a.outcome for a in fx.answers()] == ["accepted", "accepted"]
    assert [e.type for e in fx.on("dlq")] == ["event.dead_lettered"]


# --- notifications ----------------------------------------------------------------------------


def _message(message_id: str = "m-1", *, to: str | None = "ada@example.com") -> bytes:
    return _raw(
        MessageRequested(
            message_id=message_id, user_id="u-1", to=to,
            template="password_reset", params={"token": "s3cret-token"},
        )
    )


def _pushed_counts(effects: IdentityEffects) -> list[int]:
    """The unread counts pushed, once per event id (a replay repeats an id)."""
    seen: dict[str, int] = {}
    for _, envelope in effects.pushed:
        if envelope.type == "notification.unread_changed":
            seen.setdefault(envelope.id, envelope.data["unread"])
    return list(seen.values())


def _request(kind: type[Any], message_id: str, at: datetime = NOW) -> bytes:
    """A read or delete of the notification of ``message_id``, as u-1."""
    return _raw(kind(user_id="u-1", notification_id=derived_id(message_id, "notification"),
                     deadline=at + timedelta(seconds=5), reply_to="gw-1"))


def _read_all(at: datetime = NOW) -> bytes:
    return _raw(NotificationReadAllRequested(user_id="u-1", deadline=at + timedelta(seconds=5),
                                             reply_to="gw-1"))


async def test_message_is_delivered_once_and_notification_is_secret_free(
    effects: IdentityEffects,
) -> None:
    sink = RecordingSink()
    decider = NotificationsDecider({}, effects, sink)
    raw = _message()
    assert await decider.handle(raw, now=NOW) == "delivered"
    assert await decider.handle(raw, now=LATER) == "delivered"  # redelivery
    assert len(sink.delivered) == 1
    assert sink.delivered[0]["params"]["token"] == "s3cret-token"
    notes = effects.repos["NotificationRepository"].docs
    [note] = notes.values()
    assert note.notification_id == derived_id("m-1", "notification")
    assert note.created_at == NOW.replace(microsecond=250000)
    created = effects.on("notifications")
    assert len(created) == 2
    assert created[0] == created[1]
    assert effects.pushed[0][0] == "user:u-1"
    assert "s3cret" not in orjson.dumps([e.to_dict() for _, e in effects.emitted]).decode()


async def test_read_and_delete_are_idempotent_and_owner_only(effects: IdentityEffects) -> None:
    decider = NotificationsDecider({}, effects, RecordingSink())
    await decider.handle(_message(), now=NOW)
    note_id = derived_id("m-1", "notification")
    common = {"notification_id": note_id, "deadline": NOW + timedelta(seconds=5),
              "reply_to": "gw-1"}
    read = _raw(NotificationReadRequested(user_id="u-1", **common))
    theirs = _raw(NotificationDeleteRequested(user_id="u-2", **common), key="u-2")
    delete = _raw(NotificationDeleteRequested(user_id="u-1", **common))
    assert await decider.handle(read, now=NOW) == "accepted"
    assert effects.repos["NotificationRepository"].docs[note_id].read is True
    assert await decider.handle(theirs, now=NOW) == "rejected"
    assert await decider.handle(delete, now=NOW) == "accepted"
    assert await decider.handle(delete, now=LATER) == "accepted"  # redelivery: same answer
    assert effects.repos["NotificationRepository"].docs == {}
    assert [(a.outcome, a.code) for a in effects.answers()] == [
        ("accepted", None), ("rejected", "NOT_FOUND"), ("accepted", None), ("accepted", None),
    ]


async def test_counts_and_addresses_come_from_the_table_not_a_read_per_message(
    effects: IdentityEffects,
) -> None:
    sink = RecordingSink()
    decider = NotificationsDecider({}, effects, sink)
    notes = effects.repos["NotificationRepository"]
    steps = [
        _message("m-1", to=None), _message("m-2", to=None), _message("m-3", to=None),
        _request(NotificationReadRequested, "m-1"),
        _request(NotificationDeleteRequested, "m-2"),
        _request(NotificationDeleteRequested, "m-1"),  # a read one: the count stays
        _read_all(), _read_all(),  # the second finds nothing unread
        _message("m-4", to=None),
    ]
    for raw in steps:
        await decider.handle(raw, now=NOW)
    assert _pushed_counts(effects) == [1, 2, 3, 2, 1, 0, 1]
    assert notes.unread("u-1") == 1
    for raw in steps:  # every record delivered again: no count moves, none is new
        await decider.handle(raw, now=LATER)
    assert _pushed_counts(effects) == [1, 2, 3, 2, 1, 0, 1]
    assert notes.unread("u-1") == 1
    assert {m["to"] for m in sink.delivered} == {"u-1@example.com"}
    assert len(sink.delivered) == 4
    # Counted and looked up once, for a user the table did not know; never per message.
    assert (notes.counts, effects.fake_users.lookups) == (1, 1)


class FailingOnce(dict[str, Any]):
    """A table whose first write of ``key`` fails, as a worker killed just before it."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key: str | None = key

    def __setitem__(self, key: str, value: Any) -> None:
        if key == self.key:
            self.key = None
            raise ConnectionError("killed before the decision was stored")
        super().__setitem__(key, value)


async def test_a_change_interrupted_before_its_decision_moves_the_count_once(
    effects: IdentityEffects,
) -> None:
    table = FailingOnce("message:m-1")
    decider = NotificationsDecider(table, effects, RecordingSink())
    with pytest.raises(ConnectionError):
        await decider.handle(_message("m-1"), now=NOW)
    await decider.handle(_message("m-1"), now=NOW)  # delivered again
    await decider.handle(_message("m-2"), now=NOW)
    read = _request(NotificationReadRequested, "m-1")
    table.key = f"command:{Envelope.decode(read).id}"
    with pytest.raises(ConnectionError):
        await decider.handle(read, now=NOW)
    await decider.handle(read, now=NOW)
    read_all = _read_all()
    table.key = f"command:{Envelope.decode(read_all).id}"
    with pytest.raises(ConnectionError):
        await decider.handle(read_all, now=NOW)
    await decider.handle(read_all, now=NOW)
    assert _pushed_counts(effects) == [1, 2, 1, 0]
    assert effects.repos["NotificationRepository"].unread("u-1") == 0


async def test_a_table_from_before_counts_were_kept_counts_once_from_the_read_model(
    effects: IdentityEffects,
) -> None:
    notes = effects.repos["NotificationRepository"]
    for n in (1, 2):  # notified before this agent kept counts
        await notes.create(Notification(f"old-{n}", "u-1", "file_shared", "t", "b", False, NOW))
    decided = {"notificationId": "old-2", "createdAt": "2024-05-17T12:00:00.250Z",
               "to": None, "delivered": True, "done": True}  # no "unread": kept no count
    decider = NotificationsDecider({"message:m-old": decided}, effects, RecordingSink())
    await decider.handle(_message("m-old"), now=LATER)  # a replay pushes no unknown count
    await decider.handle(_message("m-1"), now=LATER)
    await decider.handle(_message("m-2"), now=LATER)
    assert _pushed_counts(effects) == [3, 4]
    assert notes.counts == 1


async def test_read_all_reads_what_came_before_it_whatever_the_clock(
    effects: IdentityEffects,
) -> None:
    decider = NotificationsDecider({}, effects, RecordingSink())
    notes = effects.repos["NotificationRepository"]
    await decider.handle(_message("m-1"), now=NOW)
    # Decided by a worker whose clock is behind: it still reads m-1 ...
    read_all = _read_all(NOW)
    await decider.handle(read_all, now=NOW - timedelta(seconds=1))
    assert notes.unread("u-1") == 0
    # ... and m-2, decided after it in the same millisecond, comes after it.
    await decider.handle(_message("m-2"), now=NOW - timedelta(seconds=1))
    await decider.handle(read_all, now=LATER)  # delivered again: m-2 stays unread
    assert notes.unread("u-1") == 1
    assert _pushed_counts(effects) == [1, 0, 1]
    created = [n.created_at for n in sorted(notes.docs.values(), key=lambda n: n.created_at)]
    assert created == [NOW, NOW + timedelta(milliseconds=1)]


async def test_file_sink_appends_lines_and_log_sink_hides_secrets(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sink = FileSink(tmp_path / "outbox" / "messages.jsonl")
    await sink.deliver({"messageId": "a", "params": {"token": "t1"}})
    await sink.deliver({"messageId": "b", "params": {"token": "t2"}})
    lines = sink.path.read_bytes().splitlines()
    assert [orjson.loads(line)["params"]["token"] for line in lines] == ["t1", "t2"]
    caplog.set_level("INFO")
    await LogSink().deliver({"messageId": "c", "params": {"token": "t3", "expiresInMinutes": 30}})
    assert "t3" not in caplog.text
    [record] = caplog.records
    assert record.params == {"token": "***", "expiresInMinutes": 30}  # type: ignore[attr-defined]


# --- audit ------------------------------------------------------------------------------------


async def test_audit_records_are_appended_once(effects: IdentityEffects) -> None:
    decider = AuditDecider(effects)
    raw = new_event(
        LoginFailed(actor_id=None, ip="10.0.0.1", user_agent="curl", request_id="r-1",
                    email_masked="a***@example.com", email_fingerprint="f"),
        key="anonymous", source="gateway/x", occurred_at=NOW,
    ).encode()
    assert await decider.handle(raw) == "appended"
    assert await decider.handle(raw) == "duplicate"
    [entry] = effects.repos["AuditRepository"].entries.values()
    assert entry.action == "auth.login_failed"
    assert entry.at == NOW.replace(microsecond=250000)
    assert (entry.actor_id, entry.ip, entry.user_agent, entry.request_id) == (
        None, "10.0.0.1", "curl", "r-1"
    )
    assert entry.details == {"emailMasked": "a***@example.com", "emailFingerprint": "f",
                             "reason": "invalid_credentials"}
