"""The empty-fetch pacing shim: installs on the pinned aiokafka, removes cleanly."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka.consumer.fetcher import Fetcher

from streams import kafka_compat
from streams.kafka_compat import apply_empty_fetch_backoff, wake


class _FakeFetcher:
    """Stands in for ``self``: the wrapper passes it through and keeps its pace on it."""


class _FakeConsumer:
    def __init__(self, fetcher: _FakeFetcher) -> None:
        self._fetcher = fetcher


@pytest.fixture
def fetches(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bool]]:
    """Install the shim over a fake original that returns its first argument."""
    calls: list[bool] = []

    async def original(self: object, *args: Any) -> bool:
        calls.append(bool(args[0]))
        return bool(args[0])

    monkeypatch.setattr(Fetcher, "_proc_fetch_request", original)
    monkeypatch.delattr(Fetcher, "_mercato_original_proc_fetch_request", raising=False)
    yield calls
    apply_empty_fetch_backoff(0)
    assert Fetcher._proc_fetch_request is original


async def _timed(fetcher: _FakeFetcher, records: bool) -> float:
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await Fetcher._proc_fetch_request(fetcher, records) is records
    return loop.time() - started


def test_the_wrapped_method_exists_on_the_pinned_aiokafka() -> None:
    # An aiokafka upgrade that renames it must fail here, not silently spin CPUs.
    assert callable(Fetcher._proc_fetch_request)


# The paces below are far apart (10 ms against 400 ms or more), so that a test stalled by
# a busy machine still tells them apart.


async def test_empty_fast_fetches_are_paced_and_data_is_not(fetches: list[bool]) -> None:
    apply_empty_fetch_backoff(400)
    fetcher = _FakeFetcher()
    assert 0.35 <= await _timed(fetcher, False) < 5
    assert await _timed(fetcher, True) < 0.2, "a fetch that brought records must not wait"
    assert fetches == [False, True]


async def test_a_quiet_consumer_slows_down_and_wake_ends_the_wait(
    fetches: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kafka_compat, "IDLE_AFTER", 0.05)
    apply_empty_fetch_backoff(10, idle_milliseconds=2_000)
    fetcher = _FakeFetcher()
    assert await _timed(fetcher, False) < 0.5  # still the short pace
    await asyncio.sleep(0.06)
    # Quiet for longer than IDLE_AFTER: the next empty fetch waits the idle pace,
    # unless someone expecting records wakes the consumer.
    pending = asyncio.ensure_future(_timed(fetcher, False))
    await asyncio.sleep(0.05)
    assert not pending.done()
    wake(_FakeConsumer(fetcher))
    assert await asyncio.wait_for(pending, 1) < 0.5
    # Woken consumers are back on the short pace.
    assert await _timed(fetcher, False) < 0.5


async def test_records_reset_the_pace(
    fetches: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kafka_compat, "IDLE_AFTER", 0.02)
    apply_empty_fetch_backoff(10, idle_milliseconds=600)
    fetcher = _FakeFetcher()
    await _timed(fetcher, False)
    await asyncio.sleep(0.03)
    assert await _timed(fetcher, False) >= 0.55  # idle pace
    await _timed(fetcher, True)
    assert await _timed(fetcher, False) < 0.4  # records arrived: short pace again


async def test_a_cancelled_pause_returns_quietly(fetches: list[bool]) -> None:
    apply_empty_fetch_backoff(10_000)
    task = asyncio.ensure_future(Fetcher._proc_fetch_request(_FakeFetcher(), False))
    await asyncio.sleep(0.01)
    task.cancel()
    assert await task is False


def test_wake_ignores_consumers_that_never_fetched() -> None:
    wake(_FakeConsumer(_FakeFetcher()))


async def test_back_to_back_fetches_with_records_are_spaced_by_the_interval(
    fetches: list[bool],
) -> None:
    apply_empty_fetch_backoff(10, interval_milliseconds=400)
    fetcher = _FakeFetcher()
    assert await _timed(fetcher, True) < 0.2  # the first goes at once, its records too
    assert 0.35 <= await _timed(fetcher, True) < 5  # the next waits out the interval
    await asyncio.sleep(0.45)
    assert await _timed(fetcher, True) < 0.2  # the interval has passed: no wait


async def test_wake_ends_the_interval_and_a_cancelled_one_sends_nothing(
    fetches: list[bool],
) -> None:
    apply_empty_fetch_backoff(10, interval_milliseconds=10_000)
    fetcher = _FakeFetcher()
    await _timed(fetcher, True)
    pending = asyncio.ensure_future(_timed(fetcher, True))
    await asyncio.sleep(0.05)
    assert not pending.done()
    wake(_FakeConsumer(fetcher))
    assert await asyncio.wait_for(pending, 1) < 0.5

    task = asyncio.ensure_future(Fetcher._proc_fetch_request(fetcher, True))
    await asyncio.sleep(0.01)
    task.cancel()
    assert await task is False
    assert fetches == [True, True]  # the cancelled one never reached the broker


async def test_each_broker_has_its_own_interval(fetches: list[bool]) -> None:
    # aiokafka fetches from every broker a consumer reads at once: one must not hold another.
    apply_empty_fetch_backoff(10, interval_milliseconds=400)
    fetcher = _FakeFetcher()
    loop = asyncio.get_running_loop()

    async def timed(node: int) -> float:
        started = loop.time()
        await Fetcher._proc_fetch_request(fetcher, True, node)
        return loop.time() - started

    assert await timed(1) < 0.2
    assert await timed(2) < 0.2  # another broker: no wait
    assert 0.35 <= await timed(1) < 5  # the same broker again: waits out the interval
