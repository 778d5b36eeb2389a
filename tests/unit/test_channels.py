"""Channel names, who may follow them, and event positions."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner

from gateway.identity.auth import Principal, scopes_for
from gateway.push.channels import Channel, admins_only, authorize, parse_channel
from gateway.push.positions import (
    format_vector,
    parse_position,
    parse_vector,
    partition_for,
)
from streams.errors import Forbidden, InvalidInput


def principal(user_id: str, *roles: str) -> Principal:
    return Principal(user_id, frozenset(roles), scopes_for(roles), "jti")


BUYER = principal("U1", "buyer")
SELLER = principal("S1", "seller")
ADMIN = principal("A1", "admin")

OK = "ok"


@pytest.mark.parametrize(
    ("who", "channel", "expected"),
    [
        (BUYER, "user:U1", OK),
        (BUYER, "user:U2", "FORBIDDEN"),
        (ADMIN, "user:U2", OK),
        (BUYER, "product:P9", OK),
        (SELLER, "product:P9", OK),
        (BUYER, "order:O1", "FORBIDDEN"),
        (SELLER, "order:O1", "FORBIDDEN"),
        (ADMIN, "order:O1", OK),
        (BUYER, "dashboard", "FORBIDDEN"),
        # The marketplace's analytics are for admins; a seller follows their own channel.
        (SELLER, "dashboard", "FORBIDDEN"),
        (ADMIN, "dashboard", OK),
        (SELLER, "dashboard:S1", OK),
        (SELLER, "dashboard:S2", "FORBIDDEN"),
        (BUYER, "dashboard:S1", "FORBIDDEN"),
        (BUYER, "dashboard:U1", "FORBIDDEN"),
        (ADMIN, "dashboard:S1", OK),
        (BUYER, "user:", "INVALID_CHANNEL"),
        (BUYER, "user", "INVALID_CHANNEL"),
        (BUYER, "users:U1", "INVALID_CHANNEL"),
        (BUYER, "user:U1:extra", "INVALID_CHANNEL"),
        (BUYER, "user:U 1", "INVALID_CHANNEL"),
        (BUYER, "dashboard:x y", "INVALID_CHANNEL"),
        (BUYER, "", "INVALID_CHANNEL"),
        (BUYER, 42, "INVALID_CHANNEL"),
        (BUYER, None, "INVALID_CHANNEL"),
    ],
)
async def test_authorization_table(who: Principal, channel: object, expected: str) -> None:
    if expected == OK:
        parsed = await authorize(who, channel, admins_only)
        assert parsed.name == channel
        return
    with pytest.raises((Forbidden, InvalidInput)) as caught:
        await authorize(who, channel, admins_only)
    assert caught.value.code == expected


async def test_order_access_hook_decides_for_non_admins() -> None:
    seen: list[tuple[str, str]] = []

    async def buyer_of_o7(who: Principal, order_id: str) -> bool:
        seen.append((who.user_id, order_id))
        return who.user_id == "U1" and order_id == "O7"

    assert (await authorize(BUYER, "order:O7", buyer_of_o7)).name == "order:O7"
    with pytest.raises(Forbidden):
        await authorize(BUYER, "order:O8", buyer_of_o7)
    assert seen == [("U1", "O7"), ("U1", "O8")]


def test_parse_channel_shapes() -> None:
    assert parse_channel("user:U1") == Channel("user", "U1")
    assert parse_channel("dashboard") == Channel("dashboard")
    assert parse_channel("order:6650f0c2-aa_1").name == "order:6650f0c2-aa_1"


def test_positions_and_vectors_round_trip() -> None:
    assert parse_position("3-17") == (3, 17)
    assert parse_vector("0-41.3-17") == {0: 41, 3: 17}
    assert format_vector({3: 17, 0: 41, 1: -1}) == "0-41.3-17"
    assert parse_vector("earliest") == {} == parse_vector("0")
    assert format_vector({}) == "earliest"
    for bad in ("", "3", "3-", "-1", "a-b", "3-17-1", "3--1"):
        with pytest.raises(InvalidInput) as caught:
            parse_position(bad)
        assert caught.value.code == "INVALID_POSITION"
    with pytest.raises(InvalidInput):
        parse_vector("0-1.0-2")


def test_partition_matches_the_producers_default_partitioner() -> None:
    partitioner = DefaultPartitioner()
    for n in (1, 4, 7):
        for channel in ("user:U1", "order:O1", "product:P-42", "dashboard"):
            expected = partitioner(channel.encode(), list(range(n)), list(range(n)))
            assert partition_for(channel, n) == expected
