"""The empty-fetch backoff shim: installs on the pinned aiokafka, removes cleanly."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.consumer.fetcher import Fetcher

from streams.kafka_compat import apply_empty_fetch_backoff


class _FakeFetcher:
    """Stands in for ``self``: the wrapper only passes it through to the original."""


def test_the_wrapped_method_exists_on_the_pinned_aiokafka() -> None:
    # An aiokafka upgrade that renames it must fail here, not silently spin CPUs.
    assert callable(Fetcher._proc_fetch_request)


async def test_empty_fast_fetches_are_paced_and_data_is_not(monkeypatch: Any) -> None:
    calls: list[bool] = []
    pauses: list[float] = []

    async def original(self: object, *args: Any) -> bool:
        calls.append(args[0])
        return bool(args[0])

    async def record_pause(seconds: float) -> None:
        pauses.append(seconds)

    monkeypatch.setattr(Fetcher, "_proc_fetch_request", original)
    monkeypatch.delattr(Fetcher, "_mercato_original_proc_fetch_request", raising=False)
    monkeypatch.setattr(asyncio, "sleep", record_pause)
    apply_empty_fetch_backoff(50)
    try:
        assert await Fetcher._proc_fetch_request(_FakeFetcher(), False) is False
        assert len(pauses) == 1
        assert 0 < pauses[0] <= 0.05
        assert await Fetcher._proc_fetch_request(_FakeFetcher(), True) is True
        assert len(pauses) == 1, "a fetch that brought records must not be delayed"
    finally:
        apply_empty_fetch_backoff(0)
    assert Fetcher._proc_fetch_request is original
    assert calls == [False, True]


async def test_a_cancelled_pause_returns_quietly(monkeypatch: Any) -> None:
    async def original(self: object, *args: Any) -> bool:
        return False

    monkeypatch.setattr(Fetcher, "_proc_fetch_request", original)
    monkeypatch.delattr(Fetcher, "_mercato_original_proc_fetch_request", raising=False)
    apply_empty_fetch_backoff(10_000)
    try:
        task = asyncio.ensure_future(Fetcher._proc_fetch_request(_FakeFetcher()))
        await asyncio.sleep(0.01)
        task.cancel()
        assert await task is False
    finally:
        apply_empty_fetch_backoff(0)
