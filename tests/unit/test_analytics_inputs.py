"""The analytics routes' time parameters: out-of-range times are a 422 naming the field."""

from __future__ import annotations

import pytest

from gateway.routes.analytics import _instant
from gateway.routes.analytics_events import EventsBody, _checked, parse_instant
from streams.errors import InvalidInput


class Query:
    def __init__(self, **query: str) -> None:
        self.query = query


@pytest.mark.parametrize("raw", ["9999-12-31", "0001-01-01T00:00:00+14:00",
                                 "9999-12-31T23:59:59-14:00", "2026-12-01T10:00:00"])
def test_a_report_bound_out_of_range_is_a_validation_error_naming_it(raw: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        _instant(Query(**{"from": raw}), "from", None)  # type: ignore[arg-type]
    assert [e.field for e in raised.value.errors] == ["from"]


def test_report_bounds_are_read_in_utc() -> None:
    moment = _instant(Query(to="2026-12-01T12:00:00+02:00"), "to", None)  # type: ignore[arg-type]
    assert moment.isoformat() == "2026-12-01T10:00:00+00:00"
    day = _instant(Query(to="2026-12-01"), "to", None)  # type: ignore[arg-type]
    assert day.isoformat() == "2026-12-01T00:00:00+00:00"


def test_an_event_time_out_of_range_is_a_validation_error_naming_it() -> None:
    body = EventsBody.model_validate({"events": [
        {"type": "checkout.started", "at": "2026-12-01T10:00:00Z"},
        {"type": "checkout.started", "at": "0001-01-01T00:00:00+14:00"},
    ]})
    errors = _checked(body, None)
    assert [e.field for e in errors if e.field.endswith(".at")] == ["events.1.at"]
    assert parse_instant("0001-01-01T00:00:00+14:00") is None
