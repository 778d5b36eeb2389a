"""One ``dlq`` record in, one stored dead letter out; never a record back onto ``dlq``.

Every other agent sets a record it cannot process aside on ``dlq``. This one reads ``dlq``,
so doing the same would feed its own input: a bad dead letter would make another, which
would fail again, without end. Instead, a ``dlq`` record that is not a valid dead letter is
stored as a dead letter of its own (this agent's, at its ``dlq`` position), and any other
failure (MongoDB down, mostly) is retried until it passes: the partition waits, no letter is
lost and nothing is written to the broker.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from agents.runtime.effects import Effects
from stores.deadletters import DeadLetter, DeadLetterRepository
from streams.admission import admit, kept_value
from streams.envelope import derived_id, utcnow
from streams.events.ops import DeadLettered

log = logging.getLogger(__name__)
AGENT = "dead-letters"
MAX_BACKOFF = 5.0


class DeadLetterDecider:
    """Projects ``dlq`` records into the ``DeadLetterRepository``."""

    def __init__(self, effects: Effects, *, backoff: float = 0.2) -> None:
        self._effects = effects
        self._backoff = backoff

    async def handle(self, raw: bytes | None, *, topic: str, partition: int, offset: int) -> str:
        """Store the record's dead letter; returns ``recorded``, ``duplicate`` or ``malformed``."""
        letter, outcome = _letter_of(raw, topic=topic, partition=partition, offset=offset)
        delay = self._backoff
        while True:
            try:
                new = await self._effects.repo(DeadLetterRepository).record(letter)
            except Exception as exc:  # CancelledError is not an Exception: a stop still stops
                log.warning("%s cannot store the dead letter at %s[%d]@%d, retrying in %.1fs: %r",
                            AGENT, topic, partition, offset, delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF)
                continue
            return outcome if new else "duplicate"


def _letter_of(
    raw: bytes | None, *, topic: str, partition: int, offset: int
) -> tuple[DeadLetter, str]:
    try:
        envelope = admit(raw)
        dead = envelope.payload(DeadLettered)
        failed_at = datetime.fromisoformat(envelope.occurred_at)
    except ValueError as exc:  # EnvelopeError and pydantic's ValidationError among them
        log.error("%s: the dlq record at %s[%d]@%d is not a dead letter: %r",
                  AGENT, topic, partition, offset, exc)
        kept, truncated = kept_value(raw)
        return DeadLetter(
            letter_id=derived_id("dlq", AGENT, topic, str(partition), str(offset)),
            agent=AGENT, topic=topic, partition=partition, offset=offset, key=None,
            value=kept, size=len(raw or b""), truncated=truncated,
            error=f"{type(exc).__name__}: {exc}",
            attempts=1, failed_at=utcnow(),
        ), "malformed"
    return DeadLetter(
        letter_id=envelope.id, agent=dead.agent, topic=dead.topic, partition=dead.partition,
        offset=dead.offset, key=dead.key, value=dead.value,
        size=dead.size if dead.size is not None else len(dead.value.encode()),
        truncated=dead.truncated, error=dead.error, attempts=dead.attempts,
        failed_at=failed_at,
    ), "recorded"
