"""Analytics events: client events (``analytics``), facts (internal), closed windows, snapshots.

Client events are accepted by the gateway (``POST /v1/analytics/events``) and keyed by
session (or user). The analytics agents turn every source event into *facts*, one per
scope it counts in (the marketplace, and the seller whose product it is), and publish a
batch of source events' facts as one record per scope, keyed by scope, on the internal
``analytics-facts`` topic; closed windows go to ``analytics-windows``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from streams.events.money import Amount, Currency
from streams.registry import Payload, Timestamp, event

FACTS = "analytics-facts"
ClientEventType = Literal["product.viewed", "search.performed", "checkout.started", "page.viewed"]
Property = str | int | float | bool | None


class ClientEvent(Payload):
    """What every client event carries: who (session and/or user) and free-form properties."""

    session_id: str | None = None
    user_id: str | None = None
    # Scalars as the gateway accepts them (``Property``); typed loosely here so that a later
    # version of the gateway may accept richer values without breaking this schema.
    properties: dict[str, Any] = Field(default_factory=dict)


@event("product.viewed", topic="analytics", key="sessionId or userId",
       summary="A client showed a product page (properties.productId).")
class ProductViewed(ClientEvent):
    """The product's seller is resolved by the gateway when it accepts the event."""

    product_id: str
    seller_id: str | None = None


@event("search.performed", topic="analytics", key="sessionId or userId",
       summary="A client searched the catalog (properties.query).")
class SearchPerformed(ClientEvent):
    """A catalog search."""


@event("checkout.started", topic="analytics", key="sessionId or userId",
       summary="A client opened the checkout.")
class CheckoutStarted(ClientEvent):
    """The start of a checkout."""


@event("page.viewed", topic="analytics", key="sessionId or userId",
       summary="A client showed a page (properties.path).")
class PageViewed(ClientEvent):
    """Any page view."""


FactKind = Literal[
    "order", "refund", "view", "visit", "registration", "upload", "product", "search",
    "checkout", "payment_failed",
]


class FactLine(Payload):
    """One product's share of an order (or refund) in the fact's scope."""

    product_id: str
    units: int
    amount: Amount


class AnalyticsFact(Payload):
    """What a source event adds to one scope (internal: the analytics agents' own plumbing)."""

    # Derived from what it counts (the source event, an order's payment) and its scope, so
    # a redelivered or replayed source event yields the same fact, applied once.
    id: str
    # The source event's occurredAt in epoch milliseconds: the fact's event time (a number,
    # not RFC 3339: the windows stage only computes with it, and it is read per fact).
    at_ms: int
    seller_id: str | None = None
    kind: FactKind
    source_id: str
    # ISO 4217 of an order or refund (the source order's currency, checked there).
    currency: str | None = None
    amount: Amount | None = None
    units: int = 0
    lines: list[FactLine] = Field(default_factory=list)
    product_id: str | None = None
    name: str | None = None
    # A session or user id: distinct viewers, active users and visitors now.
    viewer: str | None = None
    user_id: str | None = None


@event("analytics.facts", topic=FACTS, key="scope (marketplace or seller:{id})",
       summary="What a batch of source events contributes to one scope's metrics: one fact "
               "per source event and scope, each with the source event's occurredAt as its "
               "time and an id derived from what it counts (the source event, or an order's "
               "payment or refund) and its scope.")
class AnalyticsFacts(Payload):
    """The facts of one scope from one batch of one source's events, in source order."""

    # The source topic and partition ("{topic}:{partition}"): each source's facts are judged
    # late against that source's own progress, not another's.
    source: str
    facts: list[AnalyticsFact] = Field(min_length=1)


@event("analytics.tick", topic=FACTS, key="tick",
       summary="The analytics timer's wall time, sent to each partition explicitly: it "
               "closes the windows of idle partitions (it never moves the event-time "
               "watermark).")
class AnalyticsTick(Payload):
    """Wall-clock time of the timer that sent it."""

    at: Timestamp


class CurrencyAmount(Payload):
    """Money in one currency."""

    currency: Currency
    amount: Amount


WindowSize = Literal["minute", "hour", "day"]


@event("analytics.window_closed", topic="analytics-windows",
       key="{scope}|{metric}|{size}|{start}",
       summary="One metric of one closed window of one scope (sellerId null: the whole "
               "marketplace). A late event within the grace re-emits it with a higher revision: "
               "keep the highest revision per key.")
class WindowClosed(Payload):
    """A closed window's value for one metric."""

    seller_id: str | None
    metric: str
    size: WindowSize
    start: Timestamp
    end: Timestamp
    revision: int = Field(ge=1)
    # A count (orders, units, views, ...), or money per currency (revenue, refunds, ...).
    value: int | list[CurrencyAmount]


class Scope(Payload):
    """Whose numbers: ``sellerId`` null is the whole marketplace."""

    seller_id: str | None


class Today(Payload):
    """The UTC day so far."""

    orders: int
    units: int
    revenue: list[CurrencyAmount]
    refunds: list[CurrencyAmount]
    net_revenue: list[CurrencyAmount]
    average_order_value: list[CurrencyAmount]
    registrations: int
    active_users: int
    product_views: int
    conversion_rate: float
    uploads: int


class MinuteBucket(Payload):
    """One minute of the last hour."""

    start: Timestamp
    orders: int
    revenue: list[CurrencyAmount]
    product_views: int
    registrations: int


class TopProduct(Payload):
    """One of today's best-selling products."""

    product_id: str
    name: str | None
    orders: int
    units: int
    revenue: list[CurrencyAmount]


@event("analytics.snapshot", topic="push", key="dashboard or dashboard:{sellerId}",
       summary="The live dashboard of one scope (GET /v1/analytics/dashboard), pushed on "
               "dashboard / dashboard:{sellerId} at most once a second, only when it changed.")
class DashboardSnapshot(Payload):
    """The dashboard snapshot of the contract."""

    scope: Scope
    as_of: Timestamp
    today: Today
    visitors_now: int
    last_hour: list[MinuteBucket]
    top_products: list[TopProduct]
