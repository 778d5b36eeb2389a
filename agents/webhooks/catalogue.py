"""Which events an endpoint may subscribe to, and whether a subscription matches a type.

Derived from the event registry: the public events of the topics the router follows whose
family (the part before the dot) is offered. Stock changes are ``inventory.stock_changed``,
the stock event that exists. A subscription is a type or a family wildcard (``order.*``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from streams.errors import FieldError, InvalidInput
from streams.registry import all_specs

# The topics the router follows (all keyed by the aggregate the owner is found from).
FOLLOWED = ("orders", "payments", "products", "files", "inventory")
FAMILIES = ("order", "payment", "review", "file", "inventory")
MAX_SUBSCRIPTIONS = 50


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
    return (*event_types(), *(f"{family}.*" for family in families))


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


def matches(subscribed: Iterable[str], event_type: str) -> bool:
    """Whether an endpoint subscribed to ``subscribed`` receives ``event_type``."""
    family = event_type.split(".", 1)[0]
    return any(kind in (event_type, f"{family}.*") for kind in subscribed)


def selectors(event_type: str) -> list[str]:
    """The subscriptions that receive ``event_type`` (to find endpoints by index)."""
    return [event_type, f"{event_type.split('.', 1)[0]}.*"]
