"""What an agent admits before its decider sees a record (streams.admission)."""

from __future__ import annotations

import orjson
import pytest

from streams.admission import (
    MAX_RECORD_BYTES,
    RecordTooLarge,
    UnknownEventType,
    UnsupportedVersion,
    admit,
    kept_value,
)
from streams.envelope import EnvelopeError, new_event
from streams.events.ops import DeadLettered


def _value(**changes: object) -> bytes:
    letter = DeadLettered(agent="a", topic="t", partition=0, offset=1, value="v", error="e",
                          attempts=1)
    envelope = new_event(letter, key="t:0:1", source="tests").to_dict()
    envelope.update(changes)
    return orjson.dumps(envelope)


def test_a_registered_event_is_admitted() -> None:
    assert admit(_value()).type == "event.dead_lettered"


@pytest.mark.parametrize(("value", "error", "reason"), [
    (None, EnvelopeError, "no value"),
    (b"{not json", EnvelopeError, "not JSON"),
    (b"x" * (MAX_RECORD_BYTES + 1), RecordTooLarge, "over the"),
    (_value(type="thing.never_registered"), UnknownEventType, "not registered"),
    (_value(version=2), UnsupportedVersion, "v2 is not known"),
])
def test_a_record_no_agent_can_process_is_refused_with_its_reason(
    value: bytes | None, error: type[Exception], reason: str
) -> None:
    with pytest.raises(error, match=reason):
        admit(value)


def test_a_record_at_the_limit_is_judged_on_its_content() -> None:
    padded = _value(source="s" * (MAX_RECORD_BYTES - len(_value()) + len("tests")))
    assert len(padded) == MAX_RECORD_BYTES
    assert admit(padded).source.startswith("s")


@pytest.mark.parametrize("raw", [b"x" * 1_000_000, b"\x00" * 1_000_000, b"\xff" * 1_000_000])
def test_a_dead_letter_keeps_what_fits_on_the_topic(raw: bytes) -> None:
    kept, truncated = kept_value(raw)
    assert truncated
    assert 0 < len(orjson.dumps(kept)) <= MAX_RECORD_BYTES
    assert raw.decode("utf-8", "replace").startswith(kept)


def test_a_small_value_is_kept_whole() -> None:
    assert kept_value(b'{"a": 1}') == ('{"a": 1}', False)
    assert kept_value(None) == ("", False)
