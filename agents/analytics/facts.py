"""Source events -> facts: what each event adds to which scope (the first analytics stage).

Sources: ``orders`` (an order counts once paid, its refund once refunded; lines are kept
from ``order.placed`` in a table keyed by order id, co-partitioned with ``orders``),
``payments`` (failed charges), ``users`` (registrations), ``files`` (uploads),
``products`` (names for top products) and the client events on ``analytics``.

Facts are published by scope (``marketplace`` or ``seller:{id}``), so each scope's windows
live in one partition of ``analytics-facts``: the stage reads its sources a batch at a
time and publishes one ``analytics.facts`` record per scope per batch, which the second
stage applies with one write per window it touches. A fact's id is derived from what it
counts (an order's payment, a client event's id) and its scope, so a redelivered or
replayed source event yields the same facts, which the second stage applies once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, MutableMapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from streams.envelope import Envelope, derived_id, envelope_of
from streams.events.analytics import AnalyticsFacts
from streams.events.orders import OrderPlaced, OrderStatusChanged

log = logging.getLogger(__name__)
SOURCE = "agents.analytics"
MARKETPLACE = "marketplace"
# Orders that never got paid need no lines (no refund can follow).
UNPAID_ENDS = frozenset({"rejected", "payment_failed", "cancelled"})
CLIENT_KINDS = {
    "product.viewed": "view", "search.performed": "search",
    "checkout.started": "checkout", "page.viewed": "visit",
}


def epoch_ms(moment: str | datetime) -> int:
    """Epoch milliseconds of an RFC 3339 time (or a datetime)."""
    when = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return int(when.timestamp() * 1000)


def scope_key(seller_id: str | None) -> str:
    """The record key (and table prefix) of a scope."""
    return MARKETPLACE if seller_id is None else f"seller:{seller_id}"


Fact = tuple[str, dict[str, Any]]  # (scope, an ``AnalyticsFact`` as JSON)


class FactMapper:
    """Turns one source envelope into the facts it contributes (usually zero to three)."""

    def __init__(self, orders: MutableMapping[str, Any]) -> None:
        self._orders = orders

    def facts(self, envelope: Envelope) -> list[Fact]:
        """The facts of ``envelope``; order lines are remembered as a side effect."""
        kind = envelope.type
        if kind == "order.placed":
            self._remember(envelope.payload(OrderPlaced))
            return []
        if kind == "order.status_changed":
            return self._status(envelope, envelope.payload(OrderStatusChanged))
        if kind == "user.registered":
            return [self._fact(envelope, None, "registration", envelope.id)]
        if kind == "file.uploaded":
            return [self._fact(envelope, None, "upload", envelope.id)]
        if kind == "payment.failed":
            return [self._fact(envelope, None, "payment_failed", envelope.id)]
        if kind in ("product.created", "product.updated"):
            seller, name = str(envelope.data["sellerId"]), str(envelope.data["name"])
            product = str(envelope.data["productId"])
            return [
                self._fact(envelope, scope, "product", envelope.id, productId=product, name=name)
                for scope in (None, seller)
            ]
        if kind in CLIENT_KINDS:
            return self._client(envelope, CLIENT_KINDS[kind])
        return []

    def _remember(self, placed: OrderPlaced) -> None:
        if placed.order_id in self._orders:
            return
        self._orders[placed.order_id] = {
            "currency": placed.currency,
            "buyerId": placed.buyer_id,
            "lines": [
                {"productId": line.product_id, "sellerId": line.seller_id,
                 "units": line.quantity, "amount": format(line.unit_price * line.quantity, "f")}
                for line in placed.items
            ],
            "paid": False,
        }

    def _status(self, envelope: Envelope, change: OrderStatusChanged) -> list[Fact]:
        order = self._orders.get(change.order_id)
        if order is None:
            if change.status in ("paid", "refunded"):
                log.warning("analytics: order %s %s without its lines", change.order_id,
                            change.status)
            return []
        if change.status in UNPAID_ENDS and not order["paid"]:
            del self._orders[change.order_id]
            return []
        if change.status == "paid":
            if not order["paid"]:
                self._orders[change.order_id] = {**order, "paid": True}
            return self._money(envelope, order, "order", f"order:{change.order_id}:paid")
        if change.status == "refunded" and order["paid"]:
            # Lines are kept after the refund: a redelivered refund must find them again.
            return self._money(envelope, order, "refund", f"order:{change.order_id}:refunded")
        return []

    def _money(
        self, envelope: Envelope, order: dict[str, Any], kind: str, counted: str
    ) -> list[Fact]:
        lines = order["lines"]
        sellers = list(dict.fromkeys(line["sellerId"] for line in lines))
        out = []
        for seller in (None, *sellers):
            mine = [line for line in lines if seller is None or line["sellerId"] == seller]
            out.append(self._fact(
                envelope, seller, kind, counted,
                currency=order["currency"],
                amount=format(sum((Decimal(line["amount"]) for line in mine), Decimal(0)), "f"),
                units=sum(int(line["units"]) for line in mine),
                lines=[{"productId": line["productId"], "units": int(line["units"]),
                        "amount": line["amount"]} for line in mine],
                userId=order["buyerId"], viewer=f"u:{order['buyerId']}",
            ))
        return out

    def _client(self, envelope: Envelope, kind: str) -> list[Fact]:
        data = envelope.data
        user, session = data.get("userId"), data.get("sessionId")
        viewer = f"u:{user}" if user else (f"s:{session}" if session else None)
        product = data.get("productId") if kind == "view" else None
        seller = data.get("sellerId") if kind == "view" else None
        scopes: list[str | None] = [None] if not seller else [None, str(seller)]
        return [
            self._fact(envelope, scope, kind, envelope.id, productId=product, viewer=viewer,
                       userId=user)
            for scope in scopes
        ]

    @staticmethod
    def _fact(
        envelope: Envelope, seller_id: str | None, kind: str, counted: str, **fields: Any
    ) -> Fact:
        # Built as the JSON of an ``AnalyticsFact`` (camelCase; see ``metrics.Fact``), which
        # the unit tests validate: a model per fact cost more than the rest of the stage.
        scope = scope_key(seller_id)
        fact = {
            "id": derived_id(counted, kind, scope), "atMs": epoch_ms(envelope.occurred_at),
            "sellerId": seller_id, "kind": kind, "sourceId": counted,
            **{name: value for name, value in fields.items() if value is not None},
        }
        return scope, fact


def by_scope(facts: Iterable[Fact]) -> dict[str, list[dict[str, Any]]]:
    """Facts grouped by scope, each scope's in the order given."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for scope, fact in facts:
        grouped.setdefault(scope, []).append(fact)
    return grouped


def facts_record(scope: str, facts: list[dict[str, Any]], source: str) -> Envelope:
    """The ``analytics.facts`` record of one scope's facts from one batch of ``source``."""
    return envelope_of(AnalyticsFacts, {"source": source, "facts": facts}, key=scope,
                       source=SOURCE)
