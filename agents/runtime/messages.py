"""Asking the notifications agent to tell a user about an event: written once, for every owner.

The agent that owns an event decides that someone must hear of it and puts a
``message.requested`` on the outbox, keyed by the recipient, so the
notifications agent (the only writer of that user's notifications and unread
count) handles it in order with the user's other messages. Every id derives
from the causing event's id: a redelivered cause requests the same message,
which the notifications agent delivers once. The id names the recipient too, so one
cause may tell several users the same thing (an order tells each of its sellers) and each
gets a message of their own; ``message_id`` is the one way to make it, for every producer.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from agents.runtime import caused
from agents.runtime.effects import Effects
from streams.envelope import Envelope, derived_id
from streams.events.notifications import MessageRequested, Template


def message_id(cause_id: str, user_id: str, template: Template) -> str:
    """The id of the message telling ``user_id`` about ``cause_id`` with ``template``."""
    return derived_id(cause_id, "message", user_id, template)


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
    mid = message_id(cause.id, user_id, template)
    message = MessageRequested(
        message_id=mid, user_id=user_id, template=template, params=dict(params)
    )
    await caused.emit(
        effects, message, cause=cause, source=source, event_id=derived_id(mid, "requested"),
        at=at or datetime.fromisoformat(cause.occurred_at),
    )
