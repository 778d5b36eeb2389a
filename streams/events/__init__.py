"""The event catalogue. Importing this package registers every event type."""

from streams.events import commands, ops, users

__all__ = ["commands", "ops", "users"]
