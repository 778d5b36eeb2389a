"""Which events an endpoint may subscribe to, and whether a subscription matches a type.

Derived from the event registry: the public events of the topics the router follows whose
family (the part before the dot) is offered. A subscription is a type, a family wildcard
(``order.*``) or a name the contract uses for a subset of them: ``stock.*`` for the
inventory's stock events, and ``order.<status>`` (``order.completed``) for the
``order.status_changed`` events into that status. An endpoint receives the events
themselves: a subscriber to ``order.completed`` gets ``order.status_changed`` bodies.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from streams.errors import FieldError, InvalidInput
from streams.events.orders import OrderStatus
from streams.registry import all_specs

# The topics the router follows (all keyed by the aggregate the owner is found from).
FOLLOWED = ("orders", "payments", "products", "files", "inventory")
FAMILIES = ("order", "payment", "review", "file", "inventory")
MAX_SUBSCRIPTIONS = 50
STOCK = "stock.*"
STOCK_TYPES = frozenset({"inventory.stock_changed"})
STATUS_CHANGED = "order.status_changed"
# An order is placed pending (``order.placed``); every later status is a transition.
ORDER_STATUSES = tuple(s for s in typing.get_args(OrderStatus) if s != "pending")


@functools.cache
def event_types() -> tuple[str, ...]:
    """Every event type an endpoint may receive, sorted."""
    return tuple(sorted({
        spec.type for spec in all_specs()
        if spec.topic in FOLLOWED and not spec.internal
        and spec.type.split(".", 1)[0] in FAMILIES
    }))


def subscriptions() -> tuple[str, ...]:
    """What ``events`` may list: each type and each family's wildcard."""
    families = sorted({kind.split(".", 1)[0] for kind in event_types()})
    return (
        *event_types(), *(f"{family}.*" for family in families), STOCK,
        *(f"order.{status}" for status in ORDER_STATUSES),
    )


def checked(events: Iterable[str]) -> list[str]:
    """The subscriptions, deduplicated in order; ``InvalidInput`` naming each unknown one."""
    allowed = set(subscriptions())
    wanted = list(dict.fromkeys(events))
    errors = [
        FieldError(f"events.{index}", f"unknown event type; one of {', '.join(subscriptions())}")
        for index, kind in enumerate(wanted) if kind not in allowed
    ]
    if not wanted:
        errors.append(FieldError("events", "list at least one event type"))
    if len(wanted) > MAX_SUBSCRIPTIONS:
        errors.append(FieldError("events", f"at most {MAX_SUBSCRIPTIONS} entries"))
    if errors:
        raise InvalidInput("the body has invalid fields", errors=errors, code="WEBHOOK_EVENTS")
    return wanted


def matches(
    subscribed: Iterable[str], event_type: str, data: Mapping[str, Any] | None = None
) -> bool:
    """Whether an endpoint subscribed to ``subscribed`` receives ``event_type`` (``data``)."""
    return not set(subscribed).isdisjoint(selectors(event_type, data or {}))


def selectors(event_type: str, data: Mapping[str, Any]) -> list[str]:
    """The subscriptions that receive an event of ``event_type`` with ``data`` (by index)."""
    found = [event_type, f"{event_type.split('.', 1)[0]}.*"]
    if event_type in STOCK_TYPES:
        found.append(STOCK)
    if event_type == STATUS_CHANGED and data.get("status") in ORDER_STATUSES:
        found.append(f"order.{data['status']}")
    return found
