"""The dead-letters agent: a ``dlq`` record to a stored letter, never a record back on ``dlq``."""

from __future__ import annotations

from agents.deadletters.decider import AGENT, DeadLetterDecider
from stores.deadletters import DeadLetter, DeadLetterRepository
from streams.envelope import Envelope, derived_id, new_event
from streams.events.ops import DeadLettered
from tests.support.recording import RecordingEffects


class FlakyLetters:
    """Stores letters by id after ``failures`` failed writes (MongoDB down, say)."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.stored: dict[str, DeadLetter] = {}

    async def record(self, letter: DeadLetter) -> bool:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("mongo is down")
        new = letter.letter_id not in self.stored
        self.stored.setdefault(letter.letter_id, letter)
        return new


def _decider(letters: FlakyLetters) -> tuple[DeadLetterDecider, RecordingEffects]:
    effects = RecordingEffects(repos={DeadLetterRepository: letters})
    return DeadLetterDecider(effects, backoff=0.001), effects


def _letter() -> Envelope:
    letter = DeadLettered(agent="audit", topic="t.audit", partition=1, offset=9, key="k",
                          value="{}", size=2, error="EnvelopeError: x", attempts=1)
    return new_event(letter, key="t.audit:1:9", source="agents.audit")


async def test_a_dead_letter_is_stored_once_under_its_event_id() -> None:
    letters = FlakyLetters()
    decider, effects = _decider(letters)
    envelope = _letter()
    for outcome in ("recorded", "duplicate"):  # the second: a redelivery
        assert await decider.handle(envelope.encode(), topic="t.dlq", partition=0,
                                    offset=3) == outcome
    stored = letters.stored[envelope.id]
    assert (stored.agent, stored.topic, stored.partition, stored.offset) == (
        "audit", "t.audit", 1, 9)
    assert effects.emitted == []


async def test_a_store_outage_is_waited_out_not_dead_lettered() -> None:
    letters = FlakyLetters(failures=3)
    decider, effects = _decider(letters)
    envelope = _letter()
    assert await decider.handle(envelope.encode(), topic="t.dlq", partition=0,
                                offset=3) == "recorded"
    assert envelope.id in letters.stored
    assert effects.emitted == []


async def test_a_bad_dlq_record_becomes_a_letter_of_its_own_and_nothing_is_emitted() -> None:
    letters = FlakyLetters()
    decider, effects = _decider(letters)
    assert await decider.handle(b"not json", topic="t.dlq", partition=0,
                                offset=4) == "malformed"
    [stored] = letters.stored.values()
    assert stored.letter_id == derived_id("dlq", AGENT, "t.dlq", "0", "4")
    assert (stored.agent, stored.topic, stored.offset, stored.value) == (
        AGENT, "t.dlq", 4, "not json")
    assert stored.error.startswith("EnvelopeError: value is not JSON")
    assert effects.emitted == []
