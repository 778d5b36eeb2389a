"""Request and response bodies of /v1/webhooks."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gateway.http.responses import Out, PaginationOut
from gateway.http.validation import Body

URL_FIELD = Field(min_length=1, max_length=2048, description="http:// or https://")
EVENTS_FIELD = Field(
    min_length=1, max_length=50,
    description="Event types (order.placed, ...) or family wildcards (order.*).",
)


class CreateWebhookBody(Body):
    """A new endpoint."""

    url: str = URL_FIELD
    events: list[str] = EVENTS_FIELD
    description: str | None = Field(default=None, max_length=500)


class UpdateWebhookBody(Body):
    """Changes to an endpoint; ``enabled: true`` re-enables a disabled one."""

    url: str | None = Field(default=None, min_length=1, max_length=2048)
    events: list[str] | None = Field(default=None, min_length=1, max_length=50)
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = None


class WebhookOut(Out):
    """An endpoint (never its secret)."""

    webhook_id: str
    url: str
    events: list[str]
    description: str | None
    enabled: bool
    disabled_reason: str | None
    created_at: str


class CreatedWebhookOut(WebhookOut):
    """The new endpoint with its secret, shown this once."""

    secret: str = Field(description="whsec_<base64>: verifies the webhook-signature header.")


class WebhookPage(Out):
    """A page of the caller's endpoints, newest first."""

    data: list[WebhookOut]
    pagination: PaginationOut


class DeliveryOut(Out):
    """One delivery of one event to the endpoint."""

    delivery_id: str
    event_id: str
    type: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: str | None
    created_at: str


class DeliveryPage(Out):
    """A page of deliveries, newest first."""

    data: list[DeliveryOut]
    pagination: PaginationOut


class QueuedDeliveryOut(Out):
    """What was queued."""

    delivery_id: str
