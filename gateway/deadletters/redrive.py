"""Re-driving a dead letter: its original key and value produced again to its topic, once.

Written once for the admin API and ``mercato dlq redrive``. The dead letter is claimed in
the read model first (a conditional update, so of two concurrent re-drives one wins and
the other gets 409), then produced; a produce that fails gives the claim back, so the
operator may try again. A gateway that dies between the claim and the broker's ack leaves
the letter marked re-driven without the record sent: ``redrivenAt`` with no new dead letter
and no effect; re-drive it by producing the listed value by hand (docs/production.md).
"""

from __future__ import annotations

import dataclasses

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from stores.deadletters import DeadLetter, DeadLetterRepository
from streams.admission import admit
from streams.envelope import EnvelopeError, Headers, utcnow
from streams.errors import Conflict, NotFound, Unavailable


@dataclasses.dataclass(frozen=True, slots=True)
class Redriven:
    """The dead letter as marked, and where its record now is."""

    letter: DeadLetter
    partition: int
    offset: int


async def redrive(
    letters: DeadLetterRepository, producer: AIOKafkaProducer, letter_id: str, *, by: str
) -> Redriven:
    """Produce dead letter ``letter_id``'s record again; NotFound, Conflict or Unavailable."""
    letter = await letters.get(letter_id)
    if letter is None:
        raise NotFound("no such dead letter")
    if letter.truncated:
        raise Conflict(
            f"the record was {letter.size} bytes, over the record size limit, and only its "
            "start was kept: it cannot be re-driven", code="DEAD_LETTER_TRUNCATED")
    at = utcnow()
    claimed = await letters.claim_redrive(letter_id, by=by, at=at)
    if claimed is None:
        raise Conflict("the dead letter was re-driven already", code="DEAD_LETTER_REDRIVEN")
    value = letter.value.encode()
    try:
        sent = await producer.send_and_wait(
            letter.topic, value=value, key=None if letter.key is None else letter.key.encode(),
            headers=_headers(value))
    except (KafkaError, TimeoutError) as exc:
        await letters.release_redrive(letter_id, at=at)
        raise Unavailable(f"the broker did not take the record: {type(exc).__name__}") from exc
    return Redriven(claimed, sent.partition, sent.offset)


def _headers(value: bytes) -> Headers:
    # The CloudEvents headers of an envelope that decodes; a record that still does not
    # (re-driven to see it fail again, say) goes without, as it came.
    try:
        return admit(value).headers()
    except EnvelopeError:
        return []
