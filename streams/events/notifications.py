"""Notifications: the internal outbox commands and the public ``notification.created``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from streams.commands import NOTIFICATIONS
from streams.registry import Command, Payload, Timestamp, event

# One per kind of message; the in-app text of each is in agents/notifications/templates.py.
Template = Literal[
    "password_reset",
    "order_completed",  # the buyer's order is paid and delivered
    "order_received",  # a seller sold something (sale made)
    "payment_failed",  # the buyer's payment did not go through
    "order_refunded",  # the buyer's order was refunded
    "file_shared",  # someone let the user read a file
    "review_received",  # a buyer reviewed one of the seller's products
    "stock_low",  # a seller's product fell below their stock threshold
    "webhook_disabled",  # a seller's or admin's webhook endpoint kept failing
]


@event(
    "message.requested",
    topic="outbox",
    key="userId",
    summary="Deliver a templated message to a user (e.g. a password-reset email).",
)
class MessageRequested(Payload):
    """Internal: ``params`` may hold single-use tokens, so this stays on the outbox."""

    message_id: str = Field(
        description="Deliveries are deduplicated by this id; producers derive it from the "
        "event that caused the message, so a redelivered cause never notifies twice."
    )
    user_id: str
    channel: Literal["email"] = "email"
    to: str | None = Field(
        default=None,
        description="The address; when absent the notifications agent uses the account's.",
    )
    template: Template
    params: dict[str, Any] = Field(default_factory=dict)


class NotificationCommand(Command):
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
    answers=NOTIFICATIONS,
)
class NotificationReadRequested(NotificationCommand):
    """Internal command."""


@event(
    "notification.delete_requested",
    topic="outbox",
    key="userId",
    summary="A user deleted one of their notifications.",
    answers=NOTIFICATIONS,
)
class NotificationDeleteRequested(NotificationCommand):
    """Internal command."""


@event(
    "notification.read_all_requested",
    topic="outbox",
    key="userId",
    summary="A user marked every notification they had as read.",
    answers=NOTIFICATIONS,
)
class NotificationReadAllRequested(Command):
    """Internal command: reads every notification created up to when the agent decides it."""

    user_id: str
    deadline: datetime
    reply_to: str


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


@event(
    "notification.unread_changed",
    topic="push",
    key="user:{userId}",
    summary="How many of a user's notifications are unread, pushed on user:{id} after one "
    "was created, read or deleted.",
)
class NotificationUnreadChanged(Payload):
    """Pushed only: the count itself, so a client never adds up deltas."""

    user_id: str
    unread: int = Field(ge=0)
    changed_at: Timestamp
