"""The hub's fan-out, eviction and replay ordering, driven through ``dispatch`` (no Kafka)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from config import Settings
from gateway.identity.auth import Principal, scopes_for
from gateway.push.connection import CLOSE_GOING_AWAY, CLOSE_SLOW, Connection
from gateway.push.events import Control, PushEvent
from gateway.push.hub import MAX_SUBSCRIPTIONS, PushHub
from gateway.push.replay import ReplayResult
from streams.errors import InvalidInput
from tests.support.push import RecordingSink

QUEUE = 4
ME = Principal("U1", frozenset({"buyer"}), scopes_for(["buyer"]), "jti")


def envelope(n: int) -> dict[str, Any]:
    return {
        "id": f"e{n}", "type": "user.updated", "version": 1, "key": "U1",
        "occurredAt": "2025-01-01T00:00:00.000Z", "source": "test", "correlationId": f"e{n}",
        "causationId": None, "data": {"n": n},
    }


class FakeReplayer:
    """Replays from an in-memory log and lets a test act while the replay is 'reading'."""

    def __init__(self, log: list[tuple[str, int, int]], truncated: bool = False) -> None:
        self.log = log  # (channel, partition, offset)
        self.truncated = truncated
        self.during: list[tuple[str, int, int]] = []
        self.hub: PushHub | None = None
        self.calls: list[tuple[int, int, int]] = []

    async def __call__(
        self, partition: int, after: int, through: int, channels: frozenset[str]
    ) -> ReplayResult:
        self.calls.append((partition, after, through))
        await asyncio.sleep(0)
        assert self.hub is not None
        for channel, p, offset in self.during:  # live records arriving mid-replay
            self.hub.dispatch(channel, p, offset, envelope(offset))
        events = tuple(
            PushEvent(c, p, o, envelope(o))
            for c, p, o in self.log
            if c in channels and p == partition and after < o <= through
        )
        return ReplayResult(events, self.truncated)


def make_hub(replayer: FakeReplayer | None = None) -> PushHub:
    # One byte per recorded frame: a client may leave QUEUE frames unread.
    settings = Settings(jwt_secret="x" * 40, push_queue_size=QUEUE, push_queue_bytes=QUEUE)
    hub = PushHub(settings, replayer=replayer)
    if replayer is not None:
        replayer.hub = hub
    return hub


def open_conn(hub: PushHub, *, stalled: bool = False) -> Connection:
    return hub.open(ME, RecordingSink(stalled=stalled))


async def drain(conn: Connection, count: int) -> list[PushEvent | Control]:
    assert isinstance(conn.sink, RecordingSink)
    return await conn.sink.take(count)


def offsets(items: list[PushEvent | Control]) -> list[int]:
    return [i.offset for i in items if isinstance(i, PushEvent)]


async def test_fan_out_reaches_only_the_channels_subscribers() -> None:
    hub = make_hub()
    one, two, both = open_conn(hub), open_conn(hub), open_conn(hub)
    hub.subscribe(one, ["user:U1"])
    hub.subscribe(two, ["user:U2"])
    hub.subscribe(both, ["user:U1", "user:U2"])
    hub.dispatch("user:U1", 0, 10, envelope(10))
    hub.dispatch("user:U2", 0, 11, envelope(11))
    hub.dispatch("product:P1", 0, 12, envelope(12))
    first = await drain(one, 1)
    assert isinstance(first[0], PushEvent)
    assert (first[0].channel, first[0].id, first[0].envelope["id"]) == ("user:U1", "0-10", "e10")
    assert offsets(await drain(two, 1)) == [11]  # U1's event was never queued for it
    assert offsets(await drain(both, 2)) == [10, 11]
    assert hub.stats()["delivered"] == 4


async def test_slow_consumer_is_evicted_without_blocking_others() -> None:
    hub = make_hub()
    slow, fast = open_conn(hub, stalled=True), open_conn(hub)
    hub.subscribe(slow, ["user:U1"])
    hub.subscribe(fast, ["user:U1"])
    received: list[int] = []
    for offset in range(20):
        hub.dispatch("user:U1", 0, offset, envelope(offset))
        received += offsets(await drain(fast, 1))
    assert received == list(range(20))
    assert slow.ended
    assert slow.close_code == CLOSE_SLOW
    assert slow.close_reason == "slow consumer"
    assert slow.sink.closed_with == (CLOSE_SLOW, "slow consumer")  # type: ignore[attr-defined]
    assert "user:U1" not in slow.channels
    assert hub.stats()["evicted"] == 1
    assert hub.stats()["connections"] == 1


async def test_resume_replays_then_goes_live_without_gaps_or_duplicates() -> None:
    history = [("user:U1", 2, o) for o in range(6)] + [("user:U2", 2, 6)]
    replayer = FakeReplayer(history)
    hub = make_hub(replayer)
    for channel, partition, offset in history:  # before the client: moves positions only
        hub.dispatch(channel, partition, offset, envelope(offset))
    replayer.during = [("user:U1", 2, 7), ("user:U1", 2, 8)]
    conn = open_conn(hub)
    await hub.resume(conn, ["user:U1"], 2, after=2)
    hub.dispatch("user:U1", 2, 9, envelope(9))
    assert replayer.calls == [(2, 2, 6)]
    assert offsets(await drain(conn, 6)) == [3, 4, 5, 7, 8, 9]
    assert hub.stats()["replayed"] == 3


async def test_live_events_at_or_below_the_resume_point_are_suppressed() -> None:
    replayer = FakeReplayer([])
    hub = make_hub(replayer)
    hub.dispatch("user:U1", 1, 5, envelope(5))
    conn = open_conn(hub)
    # The client already saw offset 7 (another gateway was ahead of this one).
    await hub.resume(conn, ["user:U1"], 1, after=7)
    for offset in (6, 7, 8):
        hub.dispatch("user:U1", 1, offset, envelope(offset))
    assert replayer.calls == []
    assert offsets(await drain(conn, 1)) == [8]


async def test_truncated_and_failed_replays_tell_the_client_and_stay_live() -> None:
    replayer = FakeReplayer([("user:U1", 0, 1)], truncated=True)
    hub = make_hub(replayer)
    hub.dispatch("user:U1", 0, 3, envelope(3))
    conn = open_conn(hub)
    await hub.resume(conn, ["user:U1"], 0, after=-1)
    hub.dispatch("user:U1", 0, 4, envelope(4))
    items = await drain(conn, 3)
    assert offsets(items) == [1, 4]
    notice = items[1]
    assert isinstance(notice, Control)
    assert notice.frame["code"] == "REPLAY_TRUNCATED"
    assert notice.frame["channel"] == "user:U1"

    async def broken(
        partition: int, after: int, through: int, channels: frozenset[str]
    ) -> ReplayResult:
        raise OSError("broker gone")

    failing = PushHub(Settings(jwt_secret="x" * 40), replayer=broken)
    failing.dispatch("user:U1", 0, 3, envelope(3))
    other = failing.open(ME, RecordingSink())
    await failing.resume(other, ["user:U1"], 0, after=0)
    failing.dispatch("user:U1", 0, 4, envelope(4))
    items = await drain(other, 2)
    assert isinstance(items[0], Control)
    assert items[0].frame["code"] == "REPLAY_FAILED"
    assert offsets(items) == [4]


async def test_unsubscribe_limits_invalid_records_and_shutdown() -> None:
    hub = make_hub()
    conn = open_conn(hub)
    hub.subscribe(conn, ["user:U1"])
    hub.dispatch("user:U1", 0, 1, b"not json")
    hub.dispatch("user:U1", 0, 2, envelope(2))
    hub.unsubscribe(conn, "user:U1")
    hub.dispatch("user:U1", 0, 3, envelope(3))
    assert hub.stats()["invalid_records"] == 1
    with pytest.raises(InvalidInput) as caught:
        hub.subscribe(conn, [f"product:P{i}" for i in range(MAX_SUBSCRIPTIONS + 1)])
    assert caught.value.code == "TOO_MANY_SUBSCRIPTIONS"
    assert isinstance(conn.sink, RecordingSink)
    assert offsets(await conn.sink.rest()) == [2]  # and not 3, after the unsubscribe
    hub.close_all()
    assert conn.close_code == CLOSE_GOING_AWAY
    assert conn.sink.closed_with == (CLOSE_GOING_AWAY, "server shutdown")
    assert hub.stats()["connections"] == 0


class _Record:
    def __init__(self, key: bytes | None, offset: int) -> None:
        self.key, self.offset, self.value = key, offset, envelope(offset)


class _OneBatch:
    """A consumer whose first fetch is ``batch``; later fetches wait until cancelled."""

    def __init__(self, batch: dict[Any, list[_Record]]) -> None:
        self._batches = [batch]

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[Any, list[_Record]]:
        if self._batches:
            return self._batches.pop(0)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_listeners_hear_a_batch_before_it_is_fanned_out_and_may_fail() -> None:
    hub = PushHub(Settings(jwt_secret="x" * 40), replayer=FakeReplayer([]))
    order: list[str] = []

    async def drops(channels: frozenset[str]) -> None:
        order.append(f"listener {sorted(channels)}")

    async def fails(channels: frozenset[str]) -> None:
        raise RuntimeError("Redis is away")

    hub.listeners.extend([fails, drops])
    hub.dispatch = lambda channel, *_: order.append(f"dispatch {channel}")  # type: ignore[method-assign]
    tp = type("TP", (), {"partition": 0})()
    hub._consumer = _OneBatch({tp: [_Record(b"product:p1", 1), _Record(None, 2)]})
    run = asyncio.create_task(hub._run())
    for _ in range(20):
        await asyncio.sleep(0)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert order == ["listener ['product:p1']", "dispatch product:p1"]
