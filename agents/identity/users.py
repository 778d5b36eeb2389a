"""Users: profile, role and password changes, one user's commands in order.

Commands arrive keyed by user id, so one agent decides each user's changes in
order. Each decision (outcome, version, time) is stored in the table *before*
the effects run; a redelivered command finds it and repeats the effects with
the same ids, version and time. MongoDB writes are version-guarded, so
repeating one changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from datetime import datetime
from typing import Any

from agents.runtime import caused
from agents.runtime.decisions import Decisions
from agents.runtime.effects import Effects
from agents.runtime.replies import reply
from stores.users import User
from streams.envelope import Envelope, format_time, utcnow
from streams.events.users import (
    PasswordChangeRequested,
    ProfileUpdateRequested,
    RolesChangeRequested,
    UserChanged,
    UserCommand,
    UserCredentialsChanged,
    UserProfileUpdated,
    UserRolesChanged,
)

log = logging.getLogger(__name__)
SOURCE = "agents.users"
# Redelivery happens within seconds; a user's last decisions are plenty to recognise it.
KEEP_DECISIONS = 64
COMMANDS: dict[str, type[UserCommand]] = {
    "user.profile_update_requested": ProfileUpdateRequested,
    "user.roles_change_requested": RolesChangeRequested,
    "user.password_change_requested": PasswordChangeRequested,
}


class UsersDecider:
    """Decides one user command against the account and carries it out."""

    def __init__(self, table: MutableMapping[str, Any], effects: Effects) -> None:
        self._decisions = Decisions(
            table, effects, source=SOURCE, keep=KEEP_DECISIONS, empty={"version": 0}
        )
        self._effects = effects

    async def handle(self, raw: bytes, *, now: datetime | None = None) -> str:
        """Process one record; returns what happened (for logs and tests)."""
        envelope = Envelope.decode(raw)
        model = COMMANDS.get(envelope.type)
        if model is None:
            log.warning("users agent ignores %s", envelope.type)
            return "ignored"
        command = envelope.payload(model)
        now = now or utcnow()
        return await self._decisions.settle(
            envelope, lambda state: self._decide(command, state, now),
            key=command.user_id, deadline=command.deadline, now=now, evolve=_evolve,
            reply_to=command.reply_to, apply=lambda d: self._apply(envelope, command, d),
        )

    async def _decide(
        self, command: UserCommand, state: dict[str, Any], now: datetime
    ) -> dict[str, Any]:
        user = await self._effects.users.by_id(command.user_id)
        return _decide(command, user, state["version"], now)

    async def _apply(
        self, envelope: Envelope, command: UserCommand, decision: dict[str, Any]
    ) -> None:
        at = datetime.fromisoformat(decision["at"])
        version: int = decision["version"]
        changes, removals = _changes(command)
        await self._effects.users.apply_change(
            command.user_id,
            version=version,
            changes=changes,
            removals=removals,
            command_id=envelope.id,
            at=at,
        )
        public = _public_event(command, decision, version=version, at=at)
        event = await caused.emit(
            self._effects, public, cause=envelope, source=SOURCE, name="changed", at=at
        )
        if not (isinstance(command, PasswordChangeRequested) and command.reason == "rehash"):
            await self._effects.push(f"user:{command.user_id}", event)
        user = await self._effects.users.by_id(command.user_id)
        result: dict[str, Any] = user.to_json() if user is not None else {}
        result["version"] = version
        await reply(
            self._effects,
            envelope,
            reply_to=command.reply_to,
            source=SOURCE,
            outcome="accepted",
            result=result,
        )


def _decide(command: UserCommand, user: User | None, last: int, now: datetime) -> dict[str, Any]:
    """The outcome of ``command`` against the account as it is now."""
    if user is None:
        return {"outcome": "rejected", "code": "NOT_FOUND", "detail": "no such user"}
    current = max(user.version, last)
    if command.expected_version is not None and command.expected_version != current:
        return {
            "outcome": "rejected",
            "code": "VERSION_CONFLICT",
            "detail": f"the account is at version {current}, not {command.expected_version}",
        }
    decision: dict[str, Any] = {
        "outcome": "accepted",
        "version": current + 1,
        "at": format_time(now),
        "name": user.name,
    }
    if isinstance(command, RolesChangeRequested):
        decision["previousRoles"] = list(user.roles)
    return decision


def _evolve(state: dict[str, Any], decision: dict[str, Any]) -> dict[str, Any]:
    """The last version decided, which a rejection (no version) leaves as it was."""
    return {"version": max(state["version"], decision.get("version", 0))}


def _changes(command: UserCommand) -> tuple[dict[str, Any], tuple[str, ...]]:
    """MongoDB fields to set and to remove for ``command``."""
    if isinstance(command, ProfileUpdateRequested):
        changes: dict[str, Any] = {}
        if command.name is not None:
            changes["name"] = command.name
        if command.address is not None:
            changes["address"] = command.address.model_dump(by_alias=True, exclude_none=True)
        if command.stock_low_threshold is not None:
            changes["stockLowThreshold"] = command.stock_low_threshold
        removals = (("address",) if command.clear_address else ()) + (
            ("stockLowThreshold",) if command.clear_stock_low_threshold else ()
        )
        return changes, removals
    if isinstance(command, RolesChangeRequested):
        return {"roles": sorted(set(command.roles))}, ()
    if isinstance(command, PasswordChangeRequested):
        return {"passwordHash": command.password_hash}, ()
    raise TypeError(f"not a user command: {type(command).__name__}")


def _public_event(
    command: UserCommand, decision: dict[str, Any], *, version: int, at: datetime
) -> UserChanged:
    """The public event of an applied command; never a credential."""
    common: dict[str, Any] = {
        "user_id": command.user_id,
        "version": version,
        "actor_id": command.actor_id,
        "changed_at": at,
    }
    if isinstance(command, ProfileUpdateRequested):
        changed: list[Any] = []
        if command.name is not None:
            changed.append("name")
        if command.address is not None or command.clear_address:
            changed.append("address")
        if command.stock_low_threshold is not None or command.clear_stock_low_threshold:
            changed.append("stockLowThreshold")
        return UserProfileUpdated(
            **common,
            changed=changed,
            name=command.name or decision["name"],
            address=command.address,
            stock_low_threshold=command.stock_low_threshold,
        )
    if isinstance(command, RolesChangeRequested):
        return UserRolesChanged(
            **common, roles=sorted(set(command.roles)), previous_roles=decision["previousRoles"]
        )
    if isinstance(command, PasswordChangeRequested):
        return UserCredentialsChanged(**common, reason=command.reason)
    raise TypeError(f"not a user command: {type(command).__name__}")
