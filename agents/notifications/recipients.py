"""What the notifications agent keeps per recipient: their unread count and their address.

Both live in the agent's table under ``user:{id}`` (the outbox is keyed by user id, so the
entry sits in the partition of every record about that user), so a message costs no
MongoDB read: the count was a ``count_documents`` per decision and the address a users
lookup per message.

The count is exact because this agent is the only writer of the user's notifications and
handles their records in order: a change moves it once, when the change is decided. A move
is stored with the id of the change that made it (``last``) and what it did, *before* the
change's own decision: a record interrupted between the two writes is recognised when it
comes again and moves nothing twice. (Only the latest change can be in that state: one
user's records are handled in order, so nothing of theirs is decided before it finishes.)

A read-all reads what was created up to its time, so times are kept in order per user
(``at``, the latest change's): a change is never before the one before it, and one that
creates a notification is strictly after it. A read-all then reads every notification
counted before it and, delivered again after later messages, none of theirs, whatever the
workers' clocks.

A user the table does not know yet (a new recipient, or a table kept from before counts
were) is counted once from the read model: every earlier change of theirs has finished by
then, so the read model's count is the count.

The address is an account's e-mail, which never changes once registered, so it is looked up
once and kept. An account not found (not projected yet) is looked up again next time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, MutableMapping
from datetime import datetime, timedelta
from typing import Any

from agents.runtime.effects import Effects
from stores.notifications import NotificationRepository
from streams.envelope import format_time

Entry = dict[str, Any]
# Stored times have millisecond precision (format_time): "strictly after" is one tick on.
TICK = timedelta(milliseconds=1)


def key(user_id: str) -> str:
    """The table key of ``user_id``'s entry."""
    return f"user:{user_id}"


@dataclasses.dataclass(frozen=True, slots=True)
class Change:
    """What one change did to a user's unread count, and the time it was made at."""

    before: int
    after: int
    at: datetime


class Recipients:
    """Each recipient's unread count and address, in the agent's table."""

    def __init__(self, table: MutableMapping[str, Any], effects: Effects) -> None:
        self._table = table
        self._effects = effects

    async def address(self, user_id: str) -> str | None:
        """The account's e-mail address; None when there is no such account (yet)."""
        entry: Entry = self._table.get(key(user_id)) or {}
        if entry.get("email") is not None:
            return str(entry["email"])
        found = (await self._effects.users.emails([user_id])).get(user_id)
        if found is not None:
            self._table[key(user_id)] = {**entry, "email": found}
        return found

    async def unread(self, user_id: str) -> int:
        """How many of ``user_id``'s notifications are unread, now."""
        entry: Entry = self._table.get(key(user_id)) or {}
        if "unread" not in entry:
            entry = await self._counted(user_id, entry)
            self._table[key(user_id)] = entry
        return int(entry["unread"])

    async def change(
        self,
        user_id: str,
        change_id: str,
        *,
        now: datetime,
        to: Callable[[int], int],
        creates: bool = False,
    ) -> Change:
        """Change ``change_id`` moving the count ``to`` a new value, applied once.

        ``creates``: the change creates a notification, so it is made strictly after the
        user's previous change rather than at the earliest with it.
        """
        entry: Entry = self._table.get(key(user_id)) or {}
        if "unread" in entry and entry.get("last") == change_id:
            # Moved by an earlier attempt at this very change: the same answer again.
            return Change(entry["before"], entry["unread"], datetime.fromisoformat(entry["at"]))
        if "unread" not in entry:
            entry = await self._counted(user_id, entry)
        at = now
        if "at" in entry:
            previous = datetime.fromisoformat(entry["at"])
            at = max(now, previous + TICK if creates else previous)
        stamp = format_time(at)
        before = int(entry["unread"])
        after = max(to(before), 0)
        self._table[key(user_id)] = {
            **entry, "unread": after, "last": change_id, "before": before, "at": stamp
        }
        return Change(before, after, datetime.fromisoformat(stamp))

    async def _counted(self, user_id: str, entry: Entry) -> Entry:
        unread = await self._effects.repo(NotificationRepository).unread_count(user_id)
        return {**entry, "unread": unread}
