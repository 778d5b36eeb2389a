"""Feature flags without a broker: evaluation, rollout buckets, the book's records, the rule."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime

import pytest

from config import Settings
from gateway.app import create_app
from gateway.docs.openapi import build_openapi
from gateway.http.maintenance import covers
from streams.envelope import new_event
from streams.events.config import FlagSet
from streams.flags.book import FlagBook, FollowerDead
from streams.flags.rules import DEFAULTS, Flag, bucket, valid_name

USERS = [uuid.uuid4().hex for _ in range(10_000)]


@dataclasses.dataclass(frozen=True)
class Someone:
    """A caller as the gateway hands one to the rules (a Principal's two fields)."""

    user_id: str
    roles: frozenset[str]


def test_a_bucket_is_stable_per_user_and_independent_per_flag() -> None:
    assert [bucket("x.a", u) for u in USERS[:50]] == [bucket("x.a", u) for u in USERS[:50]]
    assert all(0 <= bucket("x.a", u) < 100 for u in USERS)
    # Another flag puts users elsewhere: the first users in are not always the same ones.
    same = sum(bucket("x.a", u) == bucket("x.b", u) for u in USERS)
    assert same < len(USERS) * 0.03


@pytest.mark.parametrize("percent", [1, 10, 25, 50, 90])
def test_a_rollout_reaches_its_share_of_users(percent: int) -> None:
    flag = Flag("x.rollout", True, rollout_percent=percent)
    share = sum(flag.on_for(u) for u in USERS) / len(USERS)
    assert abs(share - percent / 100) < 0.02


def test_a_growing_rollout_keeps_everyone_it_had() -> None:
    at_10 = {u for u in USERS if Flag("x.grow", True, rollout_percent=10).on_for(u)}
    at_30 = {u for u in USERS if Flag("x.grow", True, rollout_percent=30).on_for(u)}
    assert at_10 < at_30


def test_evaluation_by_enabled_roles_and_rollout() -> None:
    seller = Someone("s1", frozenset({"seller"}))
    buyer = Someone("b1", frozenset({"buyer"}))
    assert not Flag("x.off", False).on_for(seller)
    assert Flag("x.on", True).on_for(None)
    sellers_only = Flag("x.sellers", True, roles=frozenset({"seller", "admin"}))
    assert sellers_only.on_for(seller)
    assert not sellers_only.on_for(buyer)
    # A bare user id and an anonymous caller hold no roles.
    assert not sellers_only.on_for("s1")
    assert not sellers_only.on_for(None)
    assert Flag("x.all", True, rollout_percent=100).on_for(None)
    assert not Flag("x.none", True, rollout_percent=0).on_for(seller)
    assert not Flag("x.half", True, rollout_percent=99).on_for(None)


def test_names_are_built_in_or_dotted_lower_case_words() -> None:
    assert all(valid_name(name) for name in DEFAULTS)
    assert valid_name("checkout.new_flow")
    assert valid_name("search.suggest.v2")
    for bad in ("Maintenance", "single", "a..b", "a.b/c", "a.b ", "x." + "y" * 70, "1x.y"):
        assert not valid_name(bad), bad


def _record(name: str, **fields: object) -> bytes:
    state = FlagSet.model_validate({
        "name": name, "updatedBy": "admin-1", "updatedAt": datetime(2026, 12, 1, tzinfo=UTC),
        **fields,
    })
    return new_event(state, key=name, source="tests").encode()


def test_the_book_applies_states_tombstones_and_skips_bad_records() -> None:
    book = FlagBook(Settings(), client="unit")
    assert book.flags() == {name: Flag(name, on) for name, on in sorted(DEFAULTS.items())}
    book.apply(b"maintenance", _record("maintenance", enabled=True))
    book.apply(b"x.beta", _record("x.beta", enabled=True, roles=["seller"], rolloutPercent=20))
    assert book.enabled("maintenance")
    assert book.flag("x.beta") == Flag(
        "x.beta", True, 20, frozenset({"seller"}), "admin-1", "2026-12-01T00:00:00.000Z"
    )
    assert set(book.flags()) == {*DEFAULTS, "x.beta"}
    book.apply(b"x.beta", b"not json")
    book.apply(None, _record("x.beta", enabled=False))
    assert book.invalid_records == 2
    assert book.flag("x.beta").enabled
    book.apply(b"maintenance", None)  # a tombstone: back to the default
    assert not book.enabled("maintenance")
    assert not book.is_set("maintenance")
    assert not book.enabled("x.never.set")


def test_maintenance_covers_writes_on_v1_except_the_way_out() -> None:
    assert covers("POST", "/v1/orders")
    assert covers("DELETE", "/v1/files/f1")
    assert covers("PATCH", "/v1/users/me")
    assert covers("POST", "/v1/auth/register")
    assert not covers("GET", "/v1/orders")
    assert not covers("POST", "/health/ready")
    for path in ("/v1/auth/login", "/v1/auth/refresh", "/v1/auth/logout", "/v1/stream-tickets",
                 "/v1/admin/backups", "/v1/admin/features/maintenance"):
        assert not covers("POST" if "features" not in path else "PUT", path), path


def test_openapi_declares_maintenance_on_every_write_it_covers() -> None:
    document = build_openapi(create_app(Settings(jwt_secret="x" * 48)), title="M", version="1")
    for path, item in document["paths"].items():
        for method, op in item.items():
            described = op["responses"].get("503", {}).get("description", "")
            assert ("MAINTENANCE" in described) is covers(method.upper(), path), (method, path)


def test_a_book_that_does_not_follow_is_reported_dead() -> None:
    book = FlagBook(Settings(), client="unit")
    with pytest.raises(FollowerDead, match="flags are frozen"):
        book.follower()
