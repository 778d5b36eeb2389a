"""Webhooks (topic ``webhooks``, keyed by webhook id): endpoint changes and deliveries.

One endpoint's records share its key, so the webhooks agent sees its changes, the deliveries
to make and their attempts in order and is the only writer of its delivery state.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from streams.registry import Payload, Timestamp, event

TOPIC = "webhooks"


@event("webhook.changed", topic=TOPIC, key="webhookId",
       summary="An endpoint was registered, changed, re-enabled or deleted (never its secret).")
class WebhookChanged(Payload):
    """Gateway → webhooks agent: a re-enabled endpoint starts counting failures afresh."""

    webhook_id: str
    owner_id: str
    change: Literal["registered", "updated", "deleted"]
    enabled: bool
    at: Timestamp


@event("webhook.delivery_requested", topic=TOPIC, key="webhookId",
       summary="Deliver one event to one endpoint; deduplicated by deliveryId.")
class DeliveryRequested(Payload):
    """Router (or a test ping) → webhooks agent."""

    webhook_id: str
    delivery_id: str = Field(
        description="Derived from the webhook id and the event id: a redelivered event asks "
        "for the same delivery, which is made once."
    )
    event_id: str
    event_type: str
    body: str = Field(description="The event envelope as the JSON the endpoint receives.")
    requested_at: Timestamp


@event("webhook.retry_requested", topic=TOPIC, key="webhookId",
       summary="The endpoint's owner asked for a delivery to be tried again now.")
class RetryRequested(Payload):
    """Gateway → webhooks agent."""

    webhook_id: str
    delivery_id: str
    at: Timestamp
    body: str | None = Field(
        default=None, description="The delivery's body from the delivery log: the agent keeps "
        "a delivery's body only until it is delivered or failed."
    )


@event("webhook.delivery_attempted", topic=TOPIC, key="webhookId",
       summary="One attempt of a delivery: its outcome and, if it failed, when the next is due.")
class DeliveryAttempted(Payload):
    """Dispatcher → webhooks agent, which applies it to the delivery's state."""

    webhook_id: str
    delivery_id: str
    attempt: int = Field(ge=1, description="The attempt's number; a repeated one is ignored.")
    ok: bool
    status_code: int | None = None
    error: str | None = None
    next_attempt_at: Timestamp | None = Field(
        default=None, description="None when the delivery succeeded or failed for good."
    )
    at: Timestamp


@event("webhook.disabled", topic=TOPIC, key="webhookId",
       summary="An endpoint failed too many attempts in a row and was disabled.")
class WebhookDisabled(Payload):
    """Webhooks agent: its owner is notified through the outbox."""

    webhook_id: str
    owner_id: str
    failures: int
    at: Timestamp


@event("webhook.ping", topic=TOPIC, key="webhookId",
       summary="The body of a test delivery (POST /v1/webhooks/{id}/test); never on the topic.")
class WebhookPing(Payload):
    """Only ever delivered to an endpoint, inside a ``webhook.delivery_requested``."""

    webhook_id: str
    at: Timestamp
