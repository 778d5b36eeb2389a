"""The saga's record of one order, as kept in the RocksDB table (plain JSON).

``status`` is the public state; ``phase`` says which compensation is under
way (``cancelling`` while a charge is in flight, ``refunding`` until the
refund is confirmed). ``applied`` remembers every message id already applied,
and ``last`` the effects of the most recent one, so a redelivery after a crash
repeats exactly those effects (same event ids) and nothing else.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from streams.envelope import format_time
from streams.events.saga import OrderRequested

State = dict[str, Any]
TERMINAL = frozenset({"rejected", "payment_failed", "cancelled", "refunded"})
# The happy end: still cancellable (a refund), see docs in agents/saga/__init__.py.
ENDS = TERMINAL | {"completed"}
# A reservation is held (and must be given back) unless it was refused or already returned.
HELD = frozenset({"requested", "reserved"})


def new_state(command: OrderRequested, *, now: datetime) -> State:
    """The saga of a freshly requested order (status pending, nothing reserved yet)."""
    return {
        "orderId": command.order_id,
        "buyerId": command.buyer_id,
        "items": [line.model_dump(mode="json", by_alias=True) for line in command.items],
        "total": format(command.total, "f"),
        "currency": command.currency,
        "paymentMethod": command.payment_method,
        "idempotencyKey": command.idempotency_key,
        "createdAt": format_time(now),
        "updatedAt": format_time(now),
        "status": "pending",
        "phase": None,
        "cancel": None,
        "reservations": {line.product_id: "requested" for line in command.items},
        "payment": {"status": "none", "provider": None, "reference": None, "paymentId": None},
        "files": {},
        "history": [{"status": "pending", "at": format_time(now)}],
        "deadline": None,
        "applied": [],
        "version": 1,
        "last": None,
    }


def seller_ids(state: State) -> list[str]:
    """The distinct sellers of the order, in line order."""
    return list(dict.fromkeys(item["sellerId"] for item in state["items"]))


def product_ids(state: State) -> list[str]:
    """The order's products, in line order."""
    return [item["productId"] for item in state["items"]]


def set_deadline(state: State, step: str | None, now: datetime, seconds: float = 0.0) -> None:
    """Arm (or with ``step=None`` disarm) the deadline of the step now awaited."""
    if step is None:
        state["deadline"] = None
    else:
        state["deadline"] = {"step": step, "at": format_time(now + timedelta(seconds=seconds))}


def read_model(state: State) -> dict[str, Any]:
    """The orders read-model document for this state (see ``stores.orders``)."""
    payment = state["payment"]
    return {
        "_id": state["orderId"],
        "buyerId": state["buyerId"],
        "sellerIds": seller_ids(state),
        "status": state["status"],
        "items": [
            {k: item[k] for k in ("productId", "sellerId", "quantity", "unitPrice", "currency")}
            for item in state["items"]
        ],
        "total": state["total"],
        "currency": state["currency"],
        "payment": {
            "status": payment["status"],
            "provider": payment["provider"],
            "reference": payment["reference"],
        },
        "history": [
            {**entry, "at": datetime.fromisoformat(entry["at"])} for entry in state["history"]
        ],
        # What the saga awaits and until when: admins list orders past it (stuck).
        "deadline": None if state["deadline"] is None else {
            "step": state["deadline"]["step"],
            "at": datetime.fromisoformat(state["deadline"]["at"]),
        },
        "createdAt": datetime.fromisoformat(state["createdAt"]),
        "updatedAt": datetime.fromisoformat(state["updatedAt"]),
        "version": state["version"],
    }


def total(state: State) -> Decimal:
    """The order total as a Decimal."""
    return Decimal(state["total"])
