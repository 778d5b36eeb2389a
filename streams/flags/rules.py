"""Which flags exist, their defaults, and who a flag is on for: pure, no I/O.

A flag is on for a caller when it is enabled, the caller holds one of its ``roles`` (if
it names any) and the caller's bucket falls under its ``rolloutPercent`` (if it has one).
A caller's bucket is ``sha256(name + ":" + user id) mod 100``: stable, so a user keeps
their answer while a rollout stays where it is and keeps it as the rollout grows, and
independent per flag, so the same users are not always the first ones in.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import Protocol

# The flags the platform itself reads, with their state while the topic says nothing.
DEFAULTS: dict[str, bool] = {
    "registrations.open": True,
    "reviews.enabled": True,
    "maintenance": False,
}
# Any other name an admin may set (an experiment, a flag an agent reads): dotted lower-case
# words, so a flag name is never mistaken for something else in a URL or a log line.
NAME_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*){1,4}$"
NAME_MAX = 64
_NAME = re.compile(NAME_PATTERN)


class Caller(Protocol):
    """Who a flag is asked about: a signed-in user (``gateway.identity.auth.Principal``)."""

    @property
    def user_id(self) -> str: ...

    @property
    def roles(self) -> frozenset[str]: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Flag:
    """One flag's state, as the topic last set it (or its default)."""

    name: str
    enabled: bool
    rollout_percent: int | None = None
    roles: frozenset[str] | None = None
    # Who set it and when (RFC 3339); None for a default.
    updated_by: str | None = None
    updated_at: str | None = None

    def on_for(self, caller: Caller | str | None) -> bool:
        """Whether the flag is on for ``caller`` (a principal, a bare user id, or anonymous).

        A bare user id has no roles, and an anonymous caller has neither roles nor a
        bucket: a flag restricted to roles, or rolled out to fewer than 100%, is off for them.
        """
        if not self.enabled:
            return False
        if caller is None:
            user_id, held = None, frozenset[str]()
        elif isinstance(caller, str):
            user_id, held = caller, frozenset()
        else:
            user_id, held = caller.user_id, caller.roles
        if self.roles is not None and not (self.roles & held):
            return False
        if self.rollout_percent is None or self.rollout_percent >= 100:
            return True
        return user_id is not None and bucket(self.name, user_id) < self.rollout_percent


def bucket(name: str, user_id: str) -> int:
    """``user_id``'s place (0..99) in flag ``name``'s rollout."""
    digest = hashlib.sha256(f"{name}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def default(name: str) -> Flag:
    """Flag ``name`` as it is while nothing was set: built-ins by ``DEFAULTS``, others off."""
    return Flag(name, DEFAULTS.get(name, False))


def valid_name(name: str) -> bool:
    """Whether an admin may set a flag called ``name``."""
    return name in DEFAULTS or (len(name) <= NAME_MAX and _NAME.match(name) is not None)

