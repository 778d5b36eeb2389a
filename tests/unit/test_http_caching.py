"""Validators, Cache-Control, the product's shown tag and ?fields= parsing (#17), no services."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request

from gateway.catalog.schemas import ProductOut
from gateway.catalog.writes import entity_tags
from gateway.http import fields
from gateway.http.caching import cache_control, not_modified, public_answer
from stores.products import etag, shown_etag, version_tag
from streams.errors import InvalidInput

RATING = {"average": 4.5, "count": 2}


def test_cache_control_per_max_age() -> None:
    assert cache_control(60, 30) == "public, max-age=60, stale-while-revalidate=30"
    assert cache_control(0, 30) == "public, no-cache"


def test_if_none_match_compares_weakly_and_answers_304_without_a_body() -> None:
    request = make_mocked_request("GET", "/x", headers={"If-None-Match": 'W/"a", "b"'})
    assert not_modified(request, '"a"')
    assert not not_modified(request, '"c"')
    answer = public_answer(request, {"k": 1}, control="public, no-cache", etag='"b"')
    assert (answer.status, answer.body) == (304, None)
    fresh = public_answer(make_mocked_request("GET", "/x"), {"k": 1}, control="c")
    assert fresh.status == 200
    assert fresh.headers["ETag"].startswith('"')
    assert fresh.headers["Cache-Control"] == "c"


def test_the_shown_tag_changes_with_state_and_if_match_takes_its_version() -> None:
    tag = etag("p1", 3)
    shown = shown_etag(tag, 5, RATING)
    assert shown != shown_etag(tag, 4, RATING)
    assert shown != shown_etag(tag, 5, {"average": 4.0, "count": 3})
    assert shown == shown_etag(tag, 5, {"average": 4.5, "count": 2})
    assert version_tag(shown) == tag
    assert version_tag(tag) == tag
    assert entity_tags(f"{shown}, W/{shown}") == [tag, f"W/{tag}"]
    assert entity_tags("*") == ["*"]


def test_fields_are_checked_against_the_model() -> None:
    request = make_mocked_request("GET", "/x?fields=productId,%20name")
    assert fields.requested(request, ProductOut) == frozenset({"productId", "name"})
    assert fields.requested(make_mocked_request("GET", "/x"), ProductOut) is None
    for bad in ("productId,nope", ","):
        with pytest.raises(InvalidInput) as caught:
            fields.requested(make_mocked_request("GET", f"/x?fields={bad}"), ProductOut)
        assert [e.field for e in caught.value.errors] == ["fields"]
    page = {"data": [{"a": 1, "b": 2}], "pagination": {"limit": 1}}
    assert fields.select_page(page, frozenset({"a"})) == {
        "data": [{"a": 1}], "pagination": {"limit": 1}
    }
