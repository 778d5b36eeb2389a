"""The envelope: wire round trip, decode errors, CloudEvents headers, ids and times."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.envelope import (
    Envelope,
    EnvelopeError,
    derived_id,
    format_time,
    new_event,
)
from streams.events.users import UserRegistered
from streams.registry import spec_for_model

# Event times carry milliseconds (RFC 3339 with a Z), so the sample has whole milliseconds.
CREATED = datetime(2024, 5, 17, 9, 30, 15, 123000, tzinfo=UTC)


def _registered() -> UserRegistered:
    return UserRegistered(
        user_id="u-1",
        email="ada@example.com",
        name="Ada",
        roles=["buyer"],
        created_at=CREATED,
    )


def _event() -> Envelope:
    return new_event(
        _registered(),
        key="u-1",
        source="tests",
        correlation_id="corr-1",
        causation_id="cause-1",
        event_id="evt-1",
        occurred_at=CREATED,
    )


def _valid_value() -> dict[str, Any]:
    return _event().to_dict()


def test_encode_decode_round_trip() -> None:
    envelope = _event()
    decoded = Envelope.decode(envelope.encode())
    assert decoded == envelope
    assert decoded.payload(UserRegistered) == _registered()


def test_decode_accepts_str_and_dict() -> None:
    envelope = _event()
    assert Envelope.decode(envelope.encode().decode()) == envelope
    assert Envelope.decode(envelope.to_dict()) == envelope


def test_wire_value_is_camel_case_json() -> None:
    value = orjson.loads(_event().encode())
    assert set(value) == {
        "id",
        "type",
        "version",
        "key",
        "occurredAt",
        "source",
        "correlationId",
        "causationId",
        "data",
    }
    assert value["correlationId"] == "corr-1"
    assert value["causationId"] == "cause-1"


def test_causation_id_is_optional_on_decode() -> None:
    value = _valid_value()
    del value["causationId"]
    assert Envelope.decode(orjson.dumps(value)).causation_id is None


@pytest.mark.parametrize("raw", [b"", b"{", b"not json", b"\xff\xfe"])
def test_decode_rejects_non_json(raw: bytes) -> None:
    with pytest.raises(EnvelopeError, match="not JSON"):
        Envelope.decode(raw)


@pytest.mark.parametrize("raw", [b"[]", b"1", b'"text"', b"null", b"true"])
def test_decode_rejects_non_object(raw: bytes) -> None:
    with pytest.raises(EnvelopeError, match="not a JSON object"):
        Envelope.decode(raw)


@pytest.mark.parametrize(
    "field", ["id", "type", "version", "key", "occurredAt", "source", "correlationId", "data"]
)
def test_decode_names_the_missing_field(field: str) -> None:
    value = _valid_value()
    del value[field]
    with pytest.raises(EnvelopeError, match=f"'{field}' is missing"):
        Envelope.decode(orjson.dumps(value))


@pytest.mark.parametrize("data", [[], "x", 1, None])
def test_decode_rejects_non_object_data(data: object) -> None:
    value = _valid_value()
    value["data"] = data
    with pytest.raises(EnvelopeError, match="'data' must be an object"):
        Envelope.decode(orjson.dumps(value))


def test_decode_rejects_non_integer_version() -> None:
    value = _valid_value()
    value["version"] = "1"
    with pytest.raises(EnvelopeError, match="'version'"):
        Envelope.decode(orjson.dumps(value))


@pytest.mark.parametrize(
    ("field", "bad"),
    [("id", 123), ("type", None), ("key", ["k"]), ("source", 1), ("version", True)],
)
def test_decode_rejects_wrongly_typed_envelope_fields(field: str, bad: object) -> None:
    value = _valid_value()
    value[field] = bad
    with pytest.raises(EnvelopeError):
        Envelope.decode(orjson.dumps(value))


def test_headers_follow_cloudevents_kafka_binding() -> None:
    envelope = _event()
    headers = dict(envelope.headers())
    assert headers["ce_id"] == b"evt-1"
    assert headers["ce_type"] == b"user.registered"
    assert headers["ce_source"] == b"tests"
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_time"] == envelope.occurred_at.encode()
    assert headers["content-type"] == b"application/json"
    assert all(isinstance(v, bytes) for _, v in envelope.headers())


def test_new_event_takes_type_and_version_from_the_registry() -> None:
    spec = spec_for_model(UserRegistered)
    envelope = _event()
    assert (envelope.type, envelope.version) == (spec.type, spec.version)
    assert envelope.type == "user.registered"
    assert envelope.key == "u-1"
    assert envelope.data == {
        "userId": "u-1",
        "email": "ada@example.com",
        "name": "Ada",
        "roles": ["buyer"],
        "createdAt": "2024-05-17T09:30:15.123Z",
    }


def test_new_event_defaults_id_correlation_and_time() -> None:
    before = datetime.now(UTC)
    first = new_event(_registered(), key="u-1", source="tests")
    second = new_event(_registered(), key="u-1", source="tests")
    assert first.id != second.id
    assert first.correlation_id == first.id
    assert first.causation_id is None
    occurred = datetime.fromisoformat(first.occurred_at)
    assert before - timedelta(milliseconds=1) <= occurred <= datetime.now(UTC)


def test_new_event_rejects_unregistered_models() -> None:
    from pydantic import BaseModel

    class Stray(BaseModel):
        x: int = 1

    with pytest.raises(KeyError, match="Stray is not a registered event payload"):
        new_event(Stray(), key="k", source="tests")


def test_derived_id_is_deterministic_uuid() -> None:
    assert derived_id("a", "b") == derived_id("a", "b")
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", derived_id("a")
    )


@given(st.lists(st.text(), min_size=1, max_size=4), st.lists(st.text(), min_size=1, max_size=4))
def test_derived_id_differs_per_input(left: list[str], right: list[str]) -> None:
    # ':' joins the parts, so only compare inputs whose joined forms differ.
    if ":".join(left) != ":".join(right):
        assert derived_id(*left) != derived_id(*right)
    else:
        assert derived_id(*left) == derived_id(*right)


def test_format_time_is_rfc3339_utc_with_z() -> None:
    assert format_time(CREATED) == "2024-05-17T09:30:15.123Z"
    plus_two = timezone(timedelta(hours=2))
    assert format_time(datetime(2024, 1, 1, 2, 0, tzinfo=plus_two)) == "2024-01-01T00:00:00.000Z"


@given(
    st.datetimes(
        min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.timezones()
    )
)
def test_format_time_round_trips_to_the_same_instant(moment: datetime) -> None:
    text = format_time(moment)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", text)
    parsed = datetime.fromisoformat(text)
    assert parsed.utcoffset() == timedelta(0)
    assert abs(parsed - moment) < timedelta(milliseconds=1)


@given(st.lists(st.text(st.characters(codec="utf-8")), min_size=1, max_size=4))
def test_derived_id_is_the_uuid5_it_always_was(parts: list[str]) -> None:
    # Ids are part of the contract (data teams dedupe on them): computing them faster
    # must not change one.
    assert derived_id(*parts) == str(uuid.uuid5(uuid.NAMESPACE_URL, "mercato:" + ":".join(parts)))
