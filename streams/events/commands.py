"""Command plumbing: answers to waiting gateways and the record of dropped commands."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from streams.registry import Payload, Timestamp, event


@event(
    "command.answered",
    topic="replies",
    # The command's own id, minted by its sender: a correlation id may be a client's
    # X-Request-ID, shared by several waiting requests (the crossed-answers defect).
    key="commandId",
    summary="An agent's answer to a command that a gateway instance is waiting for.",
)
class CommandAnswered(Payload):
    """Internal: the outcome of a command, routed back to its sender by the command's id."""

    command_id: str
    reply_to: str
    outcome: Literal["accepted", "rejected"]
    code: str | None = Field(default=None, description="Stable error code when rejected.")
    detail: str | None = None
    result: dict[str, Any] = Field(default_factory=dict)


@event(
    "command.expired",
    topic="audit",
    key="correlationId",
    summary="A worker saw a command after its deadline and dropped it without effect.",
)
class CommandExpired(Payload):
    """The client was already told 503 and may retry; nothing was applied."""

    command_id: str
    command_type: str
    deadline: Timestamp
    seen_at: Timestamp
    late_by_ms: int
