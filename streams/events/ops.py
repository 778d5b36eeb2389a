"""Operational events: dead letters."""

from __future__ import annotations

from pydantic import Field

from streams.registry import Payload, event


@event(
    "event.dead_lettered",
    topic="dlq",
    key="original record key",
    summary="An agent gave up on a record after bounded retries; the record and error are kept.",
)
class DeadLettered(Payload):
    """Everything needed to inspect and replay a record an agent could not process."""

    agent: str
    topic: str
    partition: int
    offset: int
    key: str | None = None
    value: str = Field(
        description="The original value, decoded as UTF-8 with replacement; cut to the "
        "record size limit when ``truncated``."
    )
    size: int | None = Field(default=None, description="The original value's size in bytes.")
    truncated: bool = Field(
        default=False, description="The value was over the record size limit and is cut."
    )
    error: str = Field(description="Exception class and message of the last attempt.")
    attempts: int
