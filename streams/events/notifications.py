"""Notifications: the internal outbox commands and the public ``notification.created``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from streams.registry import Payload, event


@event(
    "message.requested",
    topic="outbox",
    key="userId",
    summary="Deliver a templated message to a user (e.g. a password-reset email).",
)
class MessageRequested(Payload):
    """Internal: ``params`` may hold single-use tokens, so this stays on the outbox."""

    message_id: str = Field(description="Deliveries are deduplicated by this id.")
    user_id: str
    channel: Literal["email"] = "email"
    to: str
    template: Literal["password_reset", "order_completed", "order_received"]
    params: dict[str, Any] = Field(default_factory=dict)


class NotificationCommand(Payload):
    """A user's request about one of their notifications, answered through ``replies``."""

    user_id: str
    notification_id: str
    deadline: datetime
    reply_to: str


@event(
    "notification.read_requested",
    topic="outbox",
    key="userId",
    summary="A user marked one of their notifications as read.",
)
class NotificationReadRequested(NotificationCommand):
    """Internal command."""


@event(
    "notification.delete_requested",
    topic="outbox",
    key="userId",
    summary="A user deleted one of their notifications.",
)
class NotificationDeleteRequested(NotificationCommand):
    """Internal command."""


@event(
    "notification.created",
    topic="notifications",
    key="userId",
    summary="An in-app notification for a user exists (never carries delivery secrets).",
)
class NotificationCreated(Payload):
    """Public event."""

    notification_id: str
    user_id: str
    type: str
    title: str
    body: str
    created_at: datetime
