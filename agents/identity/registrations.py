"""Registrations: a table keyed by normalised email makes each email register once.

Commands arrive keyed by normalised email, so every attempt for one email
lands on one partition and is decided in order by one agent. The decision
(``agents.runtime.decisions.ClaimDecisions``: the email's entry is the registration that
claimed it) is stored in the table *before* the effects run; a redelivered command finds its
own entry and repeats the (idempotent) effects with the same ids and times,
so a crash anywhere in between leaves nothing half-done.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from datetime import datetime
from typing import Any

from agents.runtime import caused
from agents.runtime.decisions import ClaimDecisions
from agents.runtime.effects import Effects
from agents.runtime.replies import refuse, reply
from streams.envelope import Envelope, format_time, utcnow
from streams.events.users import RegistrationRequested, UserRegistered

log = logging.getLogger(__name__)
SOURCE = "agents.registrations"


class RegistrationDecider:
    """Decides one registration command against the email table and carries it out."""

    def __init__(self, table: MutableMapping[str, Any], effects: Effects) -> None:
        self._claims = ClaimDecisions(table, effects, source=SOURCE)
        self._effects = effects

    async def handle(self, raw: bytes, *, now: datetime | None = None) -> str:
        """Process one record; returns what happened (for logs and tests)."""
        envelope = Envelope.decode(raw)
        if envelope.type != "registration.requested":
            log.warning("registrations agent ignores %s", envelope.type)
            return "ignored"
        command: RegistrationRequested = envelope.payload(RegistrationRequested)
        now = now or utcnow()

        async def claim(owner: dict[str, Any]) -> dict[str, Any]:
            if owner:  # the email is another command's; a refusal is not stored
                return {
                    "outcome": "rejected",
                    "code": "EMAIL_TAKEN",
                    "detail": "an account with this email already exists",
                }
            return {
                "userId": command.user_id,
                "commandId": envelope.id,
                "createdAt": format_time(now),
            }

        decided = await self._claims.once(
            envelope, claim, key=command.email_normalized, deadline=command.deadline, now=now
        )
        if decided is None:
            return "expired"
        if decided.decision.get("outcome") == "rejected":
            await refuse(
                self._effects, envelope, decided.decision, reply_to=command.reply_to,
                source=SOURCE,
            )
            return "rejected"
        await self._apply(envelope, command, datetime.fromisoformat(decided.decision["createdAt"]))
        return "accepted"

    async def _apply(
        self, envelope: Envelope, command: RegistrationRequested, created_at: datetime
    ) -> None:
        await self._effects.users.project_registered(
            user_id=command.user_id,
            email=command.email,
            email_normalized=command.email_normalized,
            name=command.name,
            roles=list(command.roles),
            password_hash=command.password_hash,
            created_at=created_at,
            event_id=envelope.id,
        )
        registered = await caused.emit(
            self._effects,
            UserRegistered(
                user_id=command.user_id,
                email=command.email,
                name=command.name,
                roles=list(command.roles),
                created_at=created_at,
            ),
            cause=envelope,
            source=SOURCE,
            at=created_at,
        )
        await self._effects.push(f"user:{command.user_id}", registered)
        await reply(
            self._effects,
            envelope,
            reply_to=command.reply_to,
            source=SOURCE,
            outcome="accepted",
            result={
                "userId": command.user_id,
                "email": command.email,
                "name": command.name,
                "roles": list(command.roles),
                "createdAt": format_time(created_at),
            },
        )
