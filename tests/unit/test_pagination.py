"""The shared cursor pagination helper."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from aiohttp.test_utils import make_mocked_request

from gateway.http.pagination import (
    CURSOR_PATTERN,
    MAX_CURSOR,
    PAGE_PARAMETERS,
    PageRequest,
    decode_cursor,
    encode_cursor,
    page_request,
    page_response,
    time_position,
)
from streams.errors import InvalidCursor, InvalidInput

AT = datetime(2024, 5, 17, 12, 0, 0, 250000, tzinfo=UTC)


def _request(query: str) -> PageRequest:
    return page_request(make_mocked_request("GET", f"/v1/things?{query}"), arity=2)


def test_defaults_and_round_trip() -> None:
    assert _request("") == PageRequest(limit=20, after=None)
    cursor = encode_cursor(AT, "id-9")
    assert _request(f"limit=100&cursor={cursor}") == PageRequest(limit=100, after=(AT, "id-9"))
    assert decode_cursor(encode_cursor(1, "x", None, True)) == (1, "x", None, True)


@pytest.mark.parametrize("limit", ["0", "101", "-1", "ten", "", "1.5"])
def test_bad_limits_are_field_errors(limit: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        _request(f"limit={limit}")
    assert [e.field for e in caught.value.errors] == ["limit"]


@pytest.mark.parametrize(
    "cursor",
    ["!!!", "bm90IGpzb24", encode_cursor("only-one"), "eyJhIjoxfQ", encode_cursor([1], "x")],
)
def test_bad_cursors_are_invalid_cursor(cursor: str) -> None:
    with pytest.raises(InvalidCursor) as caught:
        _request(f"cursor={cursor}")
    assert caught.value.code == "INVALID_CURSOR"


def test_page_response_envelope() -> None:
    page = PageRequest(limit=2, after=None)
    rows = [(AT, "c"), (AT, "b"), (AT, "a")]
    body = page_response(rows, page, position=lambda r: r, render=lambda r: r[1])
    assert body["data"] == ["c", "b"]
    assert body["pagination"]["hasMore"] is True
    assert decode_cursor(body["pagination"]["nextCursor"]) == (AT, "b")
    last = page_response(rows[:2], page, position=lambda r: r, render=lambda r: r[1])
    assert last["pagination"] == {"limit": 2, "hasMore": False, "nextCursor": None}


def test_cursors_are_held_to_their_published_shape() -> None:
    valid = encode_cursor(AT, "id-9")
    # base64 would skip the "!" and decode the rest: the published alphabet is base64url.
    for cursor in (valid[:4] + "!" + valid[4:], valid + "=", "a" * (MAX_CURSOR + 1)):
        with pytest.raises(InvalidCursor):
            decode_cursor(cursor)
    schema = next(p for p in PAGE_PARAMETERS if p["name"] == "cursor")["schema"]
    assert schema == {"type": "string", "pattern": CURSOR_PATTERN, "maxLength": MAX_CURSOR}
    assert re.fullmatch(CURSOR_PATTERN.strip("^$"), valid)
    assert len(encode_cursor(AT, "\u0001" * 200, "x" * 200, 10**18, "id")) <= MAX_CURSOR


def test_a_time_position_needs_a_time_first() -> None:
    assert time_position(None) is None
    assert time_position((AT, 7)) == (AT, "7")
    with pytest.raises(InvalidCursor):
        time_position(("not a time", "x"))
