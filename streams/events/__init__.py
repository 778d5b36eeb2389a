"""The event catalogue. Importing this package registers every event type."""

from streams.events import (
    analytics,
    audit,
    commands,
    files,
    inventory,
    notifications,
    ops,
    orders,
    payments,
    products,
    saga,
    users,
)

__all__ = [
    "analytics",
    "audit",
    "commands",
    "files",
    "inventory",
    "notifications",
    "ops",
    "orders",
    "payments",
    "products",
    "saga",
    "users",
]
