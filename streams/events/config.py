"""Feature flags on the compacted ``config`` topic, and the audit record of each change.

The ``config`` topic is a table kept by the broker: one record per flag name, the latest
wins (``streams.flags.book`` reads it whole at start, then follows it). A flag's record
says the whole state, never a delta, so compaction can drop every earlier one.
"""

from __future__ import annotations

from pydantic import Field

from streams.events.audit import KEY as AUDIT_KEY
from streams.events.audit import AuditRecord
from streams.events.users import Role
from streams.registry import Payload, Timestamp, event


class FlagRule(Payload):
    """Who a flag is on for, when it is enabled: the fields an admin sets."""

    enabled: bool
    rollout_percent: int | None = Field(
        default=None, ge=0, le=100,
        description="On for this share of users (stable per user); None: for everyone.",
    )
    roles: list[Role] | None = Field(
        default=None, description="On only for users holding one of these roles; None: any."
    )


@event(
    "flag.set",
    topic="config",
    key="name",
    summary="An admin set a feature flag; the record is the flag's whole new state.",
)
class FlagSet(FlagRule):
    """The state of one flag from now on (last writer wins, by offset)."""

    name: str
    updated_by: str = Field(description="The admin's user id.")
    updated_at: Timestamp


@event(
    "config.flag_changed",
    topic="audit",
    key=AUDIT_KEY,
    summary="An admin changed a feature flag (maintenance, registrations, reviews, ...).",
)
class FlagChanged(AuditRecord):
    """Who set which flag to what, and what it was before."""

    name: str
    enabled: bool
    rollout_percent: int | None = None
    roles: list[Role] | None = None
    previous: FlagRule | None = Field(
        default=None, description="The flag as set before; None: it had its default."
    )
