"""The event catalogue. Importing this package registers every event type."""

from streams.events import (
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
