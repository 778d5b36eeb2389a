"""Notifications: deliver outbox messages once, keep in-app notifications, apply reads/deletes.

Outbox records are keyed by recipient user id, so a user's messages and their
read/delete requests are handled in order by one agent, the only writer of that
user's notifications. Decisions (ids, times, outcomes, the unread count after
the change) are stored in the table before effects run; a redelivered record
repeats only the idempotent effects with the same ids and values, and the sink
is skipped once delivered. A crash between the sink and the table write can
still deliver twice: email is at-least-once everywhere.

The unread count and the recipient's address are the agent's own, per user in its table
(``recipients``): a message reads nothing from MongoDB (only a user the table does not know
yet is counted there once) and writes its notification once. The count after each change is
part of the change's decision, and ``GET /v1/notifications/unread-count`` counts the same
documents the changes wrote. It is pushed on ``user:{id}`` (``notification.unread_changed``)
only when a change moves it: a new notification, reading or deleting an unread one, or
reading all of them while some are unread.
A replayed record (its decision already stored) pushes its count again only while it
is still the user's count, as a plain duplicate (same id, same time): once a later
change has moved it, that change pushed the newer count, and a client showing the last
count pushed must not go back to a stale one.

A message's decision holds the offset of the record that made it. The same record
delivered again (its offset was not committed: a crash, a rebalance) repeats every effect,
which may not all have happened: they are committed with other records' after the
decision is stored (``agents.runtime.commit``), and whatever this user did after it is
delivered again after it too (one user, one partition, in order). A later copy of the
message (another offset: its producer sent it again, as the saga does when it repeats its
last plan, or a re-drive of a dead letter) re-emits the same ``notification.created``
record (consumers dedupe it by id) and does not push it to the page: the user may have read
it since. Any copy creates the notification again (an idempotent upsert: one read stays
read), unless the user deleted it: a delete leaves ``deleted:{notificationId}`` in the
table first. (Decisions stored before offsets were kept carry ``done`` instead.)
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from datetime import datetime
from typing import Any

from agents.notifications.recipients import Recipients
from agents.notifications.sinks import Sink
from agents.notifications.templates import render
from agents.runtime import caused
from agents.runtime.decisions import CommandDecisions, Decided
from agents.runtime.effects import Effects
from agents.runtime.replies import reply
from stores.notifications import Notification, NotificationRepository
from streams.envelope import Envelope, derived_id, format_time, utcnow
from streams.events.notifications import (
    MessageRequested,
    NotificationCommand,
    NotificationCreated,
    NotificationDeleteRequested,
    NotificationReadAllRequested,
    NotificationReadRequested,
    NotificationUnreadChanged,
)

log = logging.getLogger(__name__)
SOURCE = "agents.notifications"

def deleted_key(notification_id: str) -> str:
    """The table key that says the user deleted ``notification_id``."""
    return f"deleted:{notification_id}"


class NotificationsDecider:
    """Handles one outbox record: a message to deliver, or a read/delete request."""

    def __init__(self, table: MutableMapping[str, Any], effects: Effects, sink: Sink) -> None:
        self._table = table
        self._decisions = CommandDecisions(table, effects, source=SOURCE)
        self._effects = effects
        self._sink = sink
        self._recipients = Recipients(table, effects)

    @property
    def _repo(self) -> NotificationRepository:
        return self._effects.repo(NotificationRepository)

    async def handle(
        self, raw: bytes, *, offset: int | None = None, now: datetime | None = None
    ) -> str:
        """Process the record at ``offset``; returns what happened (for logs and tests)."""
        envelope = Envelope.decode(raw)
        now = now or utcnow()
        if envelope.type == "message.requested":
            message = envelope.payload(MessageRequested)
            return await self._message(envelope, message, now, offset)
        if envelope.type == "notification.read_requested":
            return await self._command(envelope, envelope.payload(NotificationReadRequested), now)
        if envelope.type == "notification.delete_requested":
            command = envelope.payload(NotificationDeleteRequested)
            return await self._command(envelope, command, now)
        if envelope.type == "notification.read_all_requested":
            every = envelope.payload(NotificationReadAllRequested)
            return await self._read_all(envelope, every, now)
        log.warning("notifications agent ignores %s", envelope.type)
        return "ignored"

    async def _message(
        self, envelope: Envelope, message: MessageRequested, now: datetime, offset: int | None
    ) -> str:
        key = f"message:{message.message_id}"
        decision = self._table.get(key)
        replayed = decision is not None
        # Another copy of a message already carried out (see the module docstring); a
        # decision stored before offsets were kept says so with "done".
        done = decision is not None and (
            bool(decision.get("done"))
            or ("offset" in decision and decision["offset"] != offset))
        if decision is None:
            to = message.to or await self._recipients.address(message.user_id)
            if to is None:
                log.warning("message %s: user %s has no address; shown in-app only",
                            message.message_id, message.user_id)
            change = await self._recipients.change(
                message.user_id, key, now=now, to=lambda unread: unread + 1, creates=True
            )
            decision = {
                "notificationId": derived_id(message.message_id, "notification"),
                "createdAt": format_time(change.at),
                "to": to,
                "delivered": to is None,
                "unread": change.after,
                "offset": offset,
            }
            self._table[key] = decision
        if not decision["delivered"]:
            await self._sink.deliver({
                **message.model_dump(mode="json", by_alias=True),
                "to": decision.get("to", message.to),
                "sentAt": decision["createdAt"],
            })
            decision = {**decision, "delivered": True}
            self._table[key] = decision
        title, body = render(message.template, message.params)
        notification = Notification(
            notification_id=decision["notificationId"],
            user_id=message.user_id,
            type=message.template,
            title=title,
            body=body,
            read=False,
            created_at=datetime.fromisoformat(decision["createdAt"]),
        )
        # Created again by any copy (an idempotent upsert: a read one stays read), unless the
        # user deleted it: a first delivery dead-lettered before its commit leaves it to the
        # next copy (a re-drive), or the count decided for it would never be right.
        if not self._table.get(deleted_key(notification.notification_id)):
            await self._repo.create(notification)
        created = await caused.emit(
            self._effects,
            NotificationCreated(
                notification_id=notification.notification_id,
                user_id=notification.user_id,
                type=notification.type,
                title=title,
                body=body,
                created_at=notification.created_at,
            ),
            cause=envelope,
            source=SOURCE,
            at=notification.created_at,
        )
        if not done:
            await self._effects.push(f"user:{message.user_id}", created)
        await self._unread_changed(
            envelope, message.user_id, decision.get("unread"), notification.created_at,
            replayed=replayed,
        )
        return "delivered"

    async def _unread_changed(
        self,
        envelope: Envelope,
        user_id: str,
        decided: int | None,
        at: datetime,
        *,
        replayed: bool,
    ) -> None:
        if decided is None:
            return  # a replay decided before counts were kept: later changes pushed theirs
        if replayed and decided != await self._recipients.unread(user_id):
            return  # moved by a later change, which pushed the newer count itself
        # Pushed only: keyed by the user like the others (the push record's key is the channel).
        changed = caused.event(
            NotificationUnreadChanged(user_id=user_id, unread=decided, changed_at=at),
            cause=envelope, source=SOURCE, key=user_id, at=at,
        )
        await self._effects.push(f"user:{user_id}", changed)

    async def _command(
        self, envelope: Envelope, command: NotificationCommand, now: datetime
    ) -> str:
        key = f"command:{envelope.id}"
        decided = await self._decisions.once(
            envelope, lambda _: self._decide_change(command, key, now),
            key=key, deadline=command.deadline, now=now,
        )
        if decided is None:
            return "expired"
        if decided.decision["outcome"] == "rejected":
            await reply(
                self._effects,
                envelope,
                reply_to=command.reply_to,
                source=SOURCE,
                outcome="rejected",
                code="NOT_FOUND",
                detail="no such notification",
            )
            return "rejected"
        if isinstance(command, NotificationDeleteRequested):
            # Before the delete, so no later copy of its message brings it back.
            self._table[deleted_key(command.notification_id)] = {"at": decided.decision["at"]}
            await self._repo.delete(command.user_id, command.notification_id)
        else:
            await self._repo.mark_read(command.user_id, command.notification_id)
        return await self._changed(envelope, command, decided)

    async def _decide_change(
        self, command: NotificationCommand, key: str, now: datetime
    ) -> dict[str, Any]:
        owned = await self._repo.owned(command.user_id, command.notification_id)
        if owned is None:
            return {"outcome": "rejected"}
        if owned.read:  # only reading or deleting an unread one lowers the count
            return {"outcome": "accepted", "at": format_time(now)}
        change = await self._recipients.change(
            command.user_id, key, now=now, to=lambda unread: unread - 1
        )
        return {"outcome": "accepted", "at": format_time(change.at), "unread": change.after}

    async def _read_all(
        self, envelope: Envelope, command: NotificationReadAllRequested, now: datetime
    ) -> str:
        # Bounded by the decision's time, so a replay never reads what arrived after it.
        key = f"command:{envelope.id}"
        decided = await self._decisions.once(
            envelope, lambda _: self._decide_read_all(command, key, now),
            key=key, deadline=command.deadline, now=now,
        )
        if decided is None:
            return "expired"
        up_to = datetime.fromisoformat(decided.decision["at"])
        await self._repo.mark_all_read(command.user_id, up_to=up_to)
        return await self._changed(envelope, command, decided)

    async def _changed(
        self,
        envelope: Envelope,
        command: NotificationCommand | NotificationReadAllRequested,
        decided: Decided,
    ) -> str:
        """After a change is applied: its unread count, if it moved one, then the answer."""
        decision = decided.decision
        if "unread" in decision:
            at = datetime.fromisoformat(decision["at"])
            await self._unread_changed(
                envelope, command.user_id, decision["unread"], at, replayed=decided.replayed
            )
        await reply(
            self._effects, envelope, reply_to=command.reply_to, source=SOURCE, outcome="accepted"
        )
        return "accepted"

    async def _decide_read_all(
        self, command: NotificationReadAllRequested, key: str, now: datetime
    ) -> dict[str, Any]:
        # Always a change, even with nothing unread: its time orders the messages after it.
        change = await self._recipients.change(command.user_id, key, now=now, to=lambda _: 0)
        decision: dict[str, Any] = {"outcome": "accepted", "at": format_time(change.at)}
        if change.before:
            decision["unread"] = change.after
        return decision
