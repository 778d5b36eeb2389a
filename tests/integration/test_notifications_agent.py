"""The notifications agent on the real MongoDB-protocol server: what each record costs there.

The repositories are the real ones and every command the agent sends is recorded by a
pymongo command listener, so the test sees the round trips themselves: a message writes its
notification and reads nothing once its recipient is known to the agent's table.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase

from agents.notifications.decider import NotificationsDecider
from agents.notifications.sinks import FileSink
from config import Settings
from stores.notifications import NotificationRepository
from stores.users import UserRepository
from streams.envelope import derived_id, new_event
from streams.events.notifications import (
    MessageRequested,
    NotificationDeleteRequested,
    NotificationReadRequested,
)
from tests.support.recording import RecordingEffects

pytestmark = pytest.mark.integration
AT = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
USER = "u-counted"


class Commands(monitoring.CommandListener):
    """The (command, collection) of every command the client sent, in order."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.sent.append((event.command_name, str(event.command.get(event.command_name))))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        """Only what was sent matters here."""

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        """Only what was sent matters here."""

    def since(self, mark: int) -> list[tuple[str, str]]:
        """What was sent after ``mark`` commands, without the driver's own handshakes."""
        return [c for c in self.sent[mark:] if c[0] not in {"hello", "isMaster", "ping"}]


@pytest.fixture
def commands() -> Commands:
    return Commands()


@pytest.fixture
async def db(
    settings: Settings, commands: Commands
) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        settings.mongo_url, tz_aware=True, event_listeners=[commands]
    )
    yield client[settings.mongo_database]
    await client.close()


def _message(n: int) -> bytes:
    return new_event(
        MessageRequested(message_id=f"m-{n}", user_id=USER, template="order_completed",
                         params={"orderId": f"o-{n}"}),
        key=USER, source="tests",
    ).encode()


def _request(kind: type[Any], n: int) -> bytes:
    return new_event(
        kind(user_id=USER, notification_id=derived_id(f"m-{n}", "notification"),
             deadline=AT + timedelta(minutes=1), reply_to="gw-1"),
        key=USER, source="tests",
    ).encode()


def _pushed_counts(effects: RecordingEffects) -> list[int]:
    seen: dict[str, int] = {}
    for _, envelope in effects.pushed:
        if envelope.type == "notification.unread_changed":
            seen.setdefault(envelope.id, envelope.data["unread"])
    return list(seen.values())


async def test_a_known_recipients_message_is_one_write_and_no_read(
    db: AsyncDatabase[dict[str, Any]], commands: Commands, tmp_path: Path
) -> None:
    users = UserRepository(db)
    await users.project_registered(
        user_id=USER, email="ada@example.com", email_normalized="ada@example.com", name="Ada",
        roles=["buyer"], password_hash="h", created_at=AT, event_id="e-reg",
    )
    effects = RecordingEffects(users=users, db=db)
    sink = FileSink(tmp_path / "messages.jsonl")
    table: dict[str, Any] = {}
    decider = NotificationsDecider(table, effects, sink)

    mark = len(commands.sent)
    await decider.handle(_message(1), offset=1, now=AT)
    # A recipient the table does not know: their address and count are read, once.
    assert commands.since(mark) == [
        ("find", "users"), ("aggregate", "notifications"), ("update", "notifications"),
    ]
    for n in (2, 3):
        mark = len(commands.sent)
        await decider.handle(_message(n), offset=n, now=AT)
        assert commands.since(mark) == [("update", "notifications")]

    mark = len(commands.sent)
    await decider.handle(_request(NotificationReadRequested, 1), now=AT)
    await decider.handle(_request(NotificationDeleteRequested, 2), now=AT)
    # A read or delete finds the notification (whose is it, is it unread), then changes it.
    assert commands.since(mark) == [
        ("find", "notifications"), ("update", "notifications"),
        ("find", "notifications"), ("delete", "notifications"),
    ]

    # A table restored elsewhere from its changelog holds the same entries: no read either.
    restored = NotificationsDecider(dict(table), effects, sink)
    mark = len(commands.sent)
    await restored.handle(_message(4), offset=4, now=AT)
    assert commands.since(mark) == [("update", "notifications")]

    assert _pushed_counts(effects) == [1, 2, 3, 2, 1, 2]
    pushed = len(effects.pushed)
    for n in (1, 2, 3, 4):  # sent again, at later offsets: nothing moves
        await restored.handle(_message(n), offset=10 + n, now=AT + timedelta(seconds=1))
    # A replay pushes its count again only while it is the user's count (m-2's and m-4's).
    assert {e.data["unread"] for _, e in effects.pushed[pushed:]
            if e.type == "notification.unread_changed"} == {2}
    # What GET /v1/notifications/unread-count answers agrees with the last count pushed.
    assert await NotificationRepository(db).unread_count(USER) == 2
    delivered = sink.path.read_text().splitlines()
    assert len(delivered) == 4
    assert all('"to":"ada@example.com"' in line for line in delivered)
