"""Audit: append every record of the ``audit`` topic to the append-only audit log.

The MongoDB document's ``_id`` is the event id, so a redelivered record is a
no-op (the duplicate insert is ignored) and no table is needed.
``command.expired`` is stored too: a dropped command is an operator-relevant fact.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from agents.runtime.effects import Effects
from stores.audit import AuditEntry, AuditRepository
from streams.envelope import Envelope

log = logging.getLogger(__name__)
# Lifted out of ``data`` into their own indexed fields; the rest stays as details.
COMMON = ("actorId", "subjectId", "ip", "userAgent", "requestId")


class AuditDecider:
    """Turns one audit event into one append-only log entry."""

    def __init__(self, effects: Effects) -> None:
        self._effects = effects

    async def handle(self, raw: bytes) -> str:
        """Process one record; returns ``appended`` or ``duplicate``."""
        envelope = Envelope.decode(raw)
        data = dict(envelope.data)
        common: dict[str, Any] = {name: data.pop(name, None) for name in COMMON}
        entry = AuditEntry(
            entry_id=envelope.id,
            action=envelope.type,
            at=datetime.fromisoformat(envelope.occurred_at),
            actor_id=common["actorId"],
            subject_id=common["subjectId"],
            ip=common["ip"],
            user_agent=common["userAgent"],
            request_id=common["requestId"],
            correlation_id=envelope.correlation_id,
            source=envelope.source,
            details=data,
        )
        appended = await self._effects.repo(AuditRepository).append(entry)
        return "appended" if appended else "duplicate"
