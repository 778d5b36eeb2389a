"""Answers to waiting gateways and records of dropped commands, shared by every agent.

Both reuse deterministic ids derived from the command's id, so a redelivered
command answers (or expires) under the same event id and consumers dedupe it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from agents.runtime import caused
from agents.runtime.effects import Effects
from streams.envelope import Envelope
from streams.events.commands import CommandAnswered, CommandExpired

log = logging.getLogger(__name__)


async def reply(
    effects: Effects,
    command: Envelope,
    *,
    reply_to: str,
    source: str,
    outcome: Literal["accepted", "rejected"],
    code: str | None = None,
    detail: str | None = None,
    result: dict[str, Any] | None = None,
) -> None:
    """Publish the answer to ``command`` on ``replies``, keyed by the command's id.

    The command's id is minted by whoever sent it (``new_event``), never taken from a
    client, so two waiting requests can never share a key; the correlation id may be a
    client's ``X-Request-ID`` and is for logs and tracing only.
    """
    answer = CommandAnswered(
        command_id=command.id,
        reply_to=reply_to,
        outcome=outcome,
        code=code,
        detail=detail,
        result=result or {},
    )
    await caused.emit(effects, answer, cause=command, source=source, name="answer")


async def refuse(
    effects: Effects,
    command: Envelope,
    decision: Mapping[str, Any],
    *,
    reply_to: str,
    source: str,
) -> None:
    """Answer ``command`` with the refusal ``decision`` records: its stable ``code`` (the
    gateway maps it to a problem) and its ``detail``, the same on every redelivery."""
    await reply(
        effects, command, reply_to=reply_to, source=source, outcome="rejected",
        code=decision["code"], detail=decision["detail"],
    )


async def record_expired(
    effects: Effects, command: Envelope, *, deadline: datetime, now: datetime, source: str
) -> None:
    """Record on ``audit`` that ``command`` arrived after its deadline and was dropped."""
    late_by = int((now - deadline).total_seconds() * 1000)
    log.warning("dropping %s %s: %d ms past its deadline", command.type, command.id, late_by)
    expired = CommandExpired(
        command_id=command.id,
        command_type=command.type,
        deadline=deadline,
        seen_at=now,
        late_by_ms=late_by,
    )
    await caused.emit(effects, expired, cause=command, source=source, name="expired")
