"""Asking the notifications agent to tell a user about an event: written once, for every owner.

The agent that owns an event decides that someone must hear of it and puts a
``message.requested`` on the outbox, keyed by the recipient, so the
notifications agent (the only writer of that user's notifications and unread
count) handles it in order with the user's other messages. Every id derives
from the causing event's id: a redelivered cause requests the same message,
which the notifications agent delivers once.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from agents.effects import Effects
from streams.envelope import Envelope, derived_id, new_event
from streams.events.notifications import MessageRequested, Template


async def request_message(
    effects: Effects,
    cause: Envelope,
    *,
    user_id: str,
    template: Template,
    params: Mapping[str, Any],
    source: str,
    at: datetime | None = None,
) -> None:
    """Tell ``user_id`` (in-app and by e-mail) about ``cause``, once per cause and template."""
    message_id = derived_id(cause.id, "message", template)
    message = MessageRequested(
        message_id=message_id, user_id=user_id, template=template, params=dict(params)
    )
    await effects.emit("outbox", new_event(
        message, key=user_id, source=source, correlation_id=cause.correlation_id,
        causation_id=cause.id, event_id=derived_id(message_id, "requested"),
        occurred_at=at or datetime.fromisoformat(cause.occurred_at),
    ))
