"""Bounded retries and dead letters, so one bad record never blocks or vanishes.

Faust acks a record whose agent raised and restarts the agent, which would
lose the record; agents therefore handle each record through ``guarded``.

A dependency that is down is not a bad record: the record waits for it (its
partition stalls) however long the outage lasts, and only failures of the record
itself use up its attempts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiokafka.errors import KafkaError, KafkaTimeoutError
from faust.exceptions import ProducerSendError
from pymongo.errors import ConnectionFailure
from redis.exceptions import ConnectionError as RedisUnreachable
from redis.exceptions import TimeoutError as RedisTimeout

from agents.runtime.effects import Effects
from streams.admission import kept_value
from streams.envelope import EnvelopeError, derived_id, new_event
from streams.events.ops import DeadLettered

log = logging.getLogger(__name__)

# Errors in the record itself: retrying cannot help.
PERMANENT: tuple[type[Exception], ...] = (EnvelopeError, ValueError, KeyError, TypeError)
# MongoDB unreachable or not answering in time (pymongo's ConnectionFailure covers
# AutoReconnect, NetworkTimeout and ServerSelectionTimeoutError), Redis likewise, and the
# broker's delivery timeout (aiokafka's other retriable errors are told by ``retriable``).
OUTAGES: tuple[type[Exception], ...] = (
    ConnectionFailure, RedisUnreachable, RedisTimeout, KafkaTimeoutError,
)
OUTAGE_MAX_BACKOFF = 5.0


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` says a dependency is down or too slow, not that the record is bad."""
    if isinstance(exc, ProducerSendError) and exc.__cause__ is not None:
        # Faust's producer wraps every aiokafka error it meets in a send.
        return is_outage(exc.__cause__)
    return isinstance(exc, OUTAGES) or (isinstance(exc, KafkaError) and exc.retriable)


async def guarded(
    *,
    agent: str,
    effects: Effects,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    process: Callable[[], Awaitable[None]],
    attempts: int = 5,
    backoff: float = 0.2,
) -> None:
    """Run ``process``; retry transient failures with backoff; dead-letter what still fails.

    An outage (``is_outage``) does not count as an attempt: the record is retried, with a
    backoff capped at ``OUTAGE_MAX_BACKOFF``, until the dependency answers. Counting it
    dead-lettered saga records after ~30 s of MongoDB being down, and their accepted
    orders never ended (issue #14).
    """
    attempt = 0
    waits = 0
    while True:
        try:
            await process()
            return
        except PERMANENT as exc:
            attempt += 1
            error: Exception = exc
            break
        except Exception as exc:
            if is_outage(exc):
                delay = min(OUTAGE_MAX_BACKOFF, backoff * 2 ** min(waits, 10))
                waits += 1
                log.warning(
                    "agent %s waits for a dependency on %s[%d]@%d (%d tries), retrying in "
                    "%.1fs: %r", agent, topic, partition, offset, waits, delay, exc,
                )
                await asyncio.sleep(delay)
                continue
            attempt += 1
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
    kept, truncated = kept_value(value)
    letter = DeadLettered(
        agent=agent,
        topic=topic,
        partition=partition,
        offset=offset,
        key=None if key is None else key.decode("utf-8", "replace"),
        # Cut to the limit: a dead letter carrying a whole oversized value would itself be
        # refused by the broker, and the agent would stall on a record it cannot set aside.
        value=kept,
        size=len(value or b""),
        truncated=truncated,
        error=f"{type(error).__name__}: {error}",
        attempts=attempt,
    )
    await effects.emit(
        "dlq",
        new_event(
            letter,
            key=f"{topic}:{partition}:{offset}",
            source=f"agents.{agent}",
            # Redelivery of the same record dead-letters it under the same id; the agent is
            # part of it, as every agent reading a topic dead-letters the record on its own.
            event_id=derived_id("dlq", agent, topic, str(partition), str(offset)),
        ),
    )
