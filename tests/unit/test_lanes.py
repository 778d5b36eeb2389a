"""KeyLanes: concurrent across keys, in order per key, acked in offset order, halted by failure."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from agents.runtime.lanes import KeyLanes, LanesHalted


@dataclasses.dataclass
class FakeMessage:
    key: bytes | None
    offset: int


@dataclasses.dataclass
class FakeEvent:
    message: FakeMessage


class FakeStream:
    def __init__(self) -> None:
        self.acked: list[int] = []
        self.progress = asyncio.Event()

    async def ack(self, event: FakeEvent) -> None:
        self.acked.append(event.message.offset)
        self.progress.set()


def events(*keys: bytes | None) -> list[FakeEvent]:
    return [FakeEvent(FakeMessage(key, offset)) for offset, key in enumerate(keys)]


async def settle(stream: FakeStream, count: int) -> None:
    async with asyncio.timeout(2):
        while len(stream.acked) < count:
            stream.progress.clear()
            await stream.progress.wait()


async def test_keys_run_concurrently_in_order_per_key_and_ack_in_offset_order() -> None:
    stream = FakeStream()
    lanes = KeyLanes(stream, limit=8)
    release_a0 = asyncio.Event()
    log: list[str] = []

    def step(name: str, gate: asyncio.Event | None = None):  # type: ignore[no-untyped-def]
        async def run() -> None:
            if gate is not None:
                await gate.wait()
            log.append(name)
        return run

    a0, b1, a2, b3 = events(b"a", b"b", b"a", b"b")
    await lanes.submit(a0, step("a0", release_a0))
    await lanes.submit(b1, step("b1"))
    await lanes.submit(a2, step("a2"))
    await lanes.submit(b3, step("b3"))
    await asyncio.sleep(0.01)
    # b's records ran while a0 was blocked; a2 waits for a0; nothing acked before a0.
    assert log == ["b1", "b3"]
    assert stream.acked == []
    release_a0.set()
    await settle(stream, 4)
    assert log == ["b1", "b3", "a0", "a2"]
    assert stream.acked == [0, 1, 2, 3]
    await lanes.aclose()


async def test_a_record_without_key_is_a_barrier() -> None:
    stream = FakeStream()
    lanes = KeyLanes(stream, limit=8)
    log: list[str] = []
    gate = asyncio.Event()

    async def slow() -> None:
        await gate.wait()
        log.append("a0")

    async def record(name: str) -> None:
        log.append(name)

    a0, none1, b2 = events(b"a", None, b"b")
    await lanes.submit(a0, slow)
    await lanes.submit(none1, lambda: record("none1"))
    await lanes.submit(b2, lambda: record("b2"))
    await asyncio.sleep(0.01)
    assert log == []
    gate.set()
    await settle(stream, 3)
    assert log == ["a0", "none1", "b2"]
    await lanes.aclose()


async def test_a_failure_stops_acks_and_new_records() -> None:
    stream = FakeStream()
    lanes = KeyLanes(stream, limit=8)
    ran: list[int] = []

    async def ok(n: int) -> None:
        ran.append(n)

    async def boom() -> None:
        raise OSError("dead-lettering failed")

    e0, e1, e2, e3 = events(b"a", b"b", b"a", b"c")
    await lanes.submit(e0, lambda: ok(0))
    await lanes.submit(e1, boom)
    await lanes.submit(e2, lambda: ok(2))
    await settle(stream, 1)
    await asyncio.sleep(0.01)
    assert stream.acked == [0]  # never past the failed record
    with pytest.raises(OSError, match="dead-lettering failed"):
        await lanes.submit(e3, lambda: ok(3))
    assert 3 not in ran
    await lanes.aclose()


async def test_same_key_after_a_failure_is_not_started() -> None:
    stream = FakeStream()
    lanes = KeyLanes(stream, limit=8)
    ran: list[int] = []
    gate = asyncio.Event()

    async def boom() -> None:
        await gate.wait()
        raise OSError("broker down")

    async def ok() -> None:
        ran.append(1)

    e0, e1 = events(b"a", b"a")
    await lanes.submit(e0, boom)
    await lanes.submit(e1, ok)
    gate.set()
    await asyncio.sleep(0.01)
    assert ran == []
    assert stream.acked == []
    with pytest.raises(OSError, match="broker down"):
        await lanes.submit(FakeEvent(FakeMessage(b"z", 2)), ok)
    await lanes.aclose()


async def test_limit_bounds_records_in_flight() -> None:
    stream = FakeStream()
    lanes = KeyLanes(stream, limit=2)
    gate = asyncio.Event()
    running = 0
    peak = 0

    async def held() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await gate.wait()
        running -= 1

    async def feed() -> None:
        for event in events(b"a", b"b", b"c", b"d"):
            await lanes.submit(event, held)

    feeder = asyncio.create_task(feed())
    await asyncio.sleep(0.01)
    assert peak == 2
    assert not feeder.done()
    gate.set()
    await feeder
    await settle(stream, 4)
    assert peak == 2
    await lanes.aclose()


async def test_aclose_lets_records_finish_then_cancels_the_rest_unacked() -> None:
    stream = FakeStream()
    lanes = KeyLanes(stream, limit=4)
    finished: list[str] = []

    async def quick() -> None:
        await asyncio.sleep(0.01)
        finished.append("quick")

    async def stuck() -> None:
        await asyncio.Event().wait()

    first, second = events(b"a", b"b")
    await lanes.submit(first, quick)
    await lanes.submit(second, stuck)
    await lanes.aclose(grace=0.1)
    assert finished == ["quick"]
    assert stream.acked == [0]
    with pytest.raises(LanesHalted):
        await lanes.submit(FakeEvent(FakeMessage(b"b", 1)), asyncio.Event().wait)
