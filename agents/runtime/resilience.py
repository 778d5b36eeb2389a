"""Bounded retries and dead letters, so one bad record never blocks or vanishes.

Faust acks a record whose agent raised and restarts the agent, which would
lose the record; agents therefore handle each record through ``guarded``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from agents.runtime.effects import Effects
from streams.envelope import EnvelopeError, derived_id, new_event
from streams.events.ops import DeadLettered

log = logging.getLogger(__name__)

# Errors in the record itself: retrying cannot help.
PERMANENT: tuple[type[Exception], ...] = (EnvelopeError, ValueError, KeyError, TypeError)


async def guarded(
    *,
    agent: str,
    effects: Effects,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes,
    process: Callable[[], Awaitable[None]],
    attempts: int = 5,
    backoff: float = 0.2,
) -> None:
    """Run ``process``; retry transient failures with backoff; dead-letter what still fails."""
    for attempt in range(1, attempts + 1):
        try:
            await process()
            return
        except PERMANENT as exc:
            error: Exception = exc
            break
        except Exception as exc:
            error = exc
            if attempt == attempts:
                break
            delay = backoff * 2 ** (attempt - 1)
            log.warning(
                "agent %s failed on %s[%d]@%d (attempt %d/%d), retrying in %.1fs: %r",
                agent,
                topic,
                partition,
                offset,
                attempt,
                attempts,
                delay,
                exc,
            )
            await asyncio.sleep(delay)
    log.error(
        "agent %s gives up on %s[%d]@%d: %r",
        agent,
        topic,
        partition,
        offset,
        error,
        exc_info=error,
    )
    letter = DeadLettered(
        agent=agent,
        topic=topic,
        partition=partition,
        offset=offset,
        key=None if key is None else key.decode("utf-8", "replace"),
        value=value.decode("utf-8", "replace"),
        error=f"{type(error).__name__}: {error}",
        attempts=attempt,
    )
    await effects.emit(
        "dlq",
        new_event(
            letter,
            key=f"{topic}:{partition}:{offset}",
            source=f"agents.{agent}",
            # Redelivery of the same record dead-letters it under the same id.
            event_id=derived_id("dlq", topic, str(partition), str(offset)),
        ),
    )
