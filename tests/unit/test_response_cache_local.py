"""The response cache's in-process copies and its shared generation reads (no Redis: the
read is a stand-in that records what it was sent, and when)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from gateway.cache.generations import GenerationReads
from gateway.cache.local import LocalEntries


class Store:
    """Named counters; each read is held until released, so a test decides what overlaps."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}
        self.sent: list[list[str]] = []
        self.release = asyncio.Event()
        self.fail: Exception | None = None

    async def read(self, names: list[str]) -> Sequence[bytes | None]:
        self.sent.append(sorted(names))
        # The values as they were when the read was sent: a later write is not seen.
        answer = [self.values.get(n) for n in names]
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return answer


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_callers_queued_together_share_one_read() -> None:
    store = Store()
    store.values = {"a": b"3"}
    reads = GenerationReads(store.read)
    waiting = [asyncio.ensure_future(reads.current(n)) for n in ("a", "a", "b")]
    await _settle()
    store.release.set()
    assert await asyncio.gather(*waiting) == [b"3", b"3", b"0"]  # unset: generation 0
    assert store.sent == [["a", "b"]]


async def test_a_caller_is_never_answered_by_a_read_sent_before_it_asked() -> None:
    store = Store()
    store.values = {"g": b"1"}
    reads = GenerationReads(store.read)
    early = asyncio.ensure_future(reads.current("g"))
    await _settle()
    assert store.sent == [["g"]]  # out, and held
    store.values["g"] = b"2"  # a drop lands while that read is out...
    late = asyncio.ensure_future(reads.current("g"))  # ...and then this caller asks
    await _settle()
    store.release.set()
    assert await early == b"1"
    assert await late == b"2"  # from the next read, sent after it asked
    assert store.sent == [["g"], ["g"]]


async def test_a_failed_read_fails_its_callers_and_the_next_ones_read_again() -> None:
    store = Store()
    store.fail = ConnectionError("away")
    reads = GenerationReads(store.read)
    store.release.set()
    with pytest.raises(ConnectionError):
        await reads.current("g")
    store.fail = None
    store.values["g"] = b"5"
    assert await reads.current("g") == b"5"


async def test_a_caller_that_leaves_does_not_cancel_the_others_read() -> None:
    store = Store()
    reads = GenerationReads(store.read)
    leaving = asyncio.ensure_future(reads.current("g"))
    staying = asyncio.ensure_future(reads.current("g"))
    await _settle()
    leaving.cancel()
    store.release.set()
    assert await staying == b"0"
    assert leaving.cancelled()


async def test_closing_cancels_the_read_under_way() -> None:
    store = Store()
    reads = GenerationReads(store.read)
    waiting = asyncio.ensure_future(reads.current("g"))
    await _settle()
    await reads.aclose()
    with pytest.raises(asyncio.CancelledError):
        await waiting


def test_a_copy_is_served_only_for_its_generation_and_within_its_ttl() -> None:
    local = LocalEntries(entries=10, max_bytes=1_000, ttl=60)
    local.put("p:1", "k", b"4", b"v4")
    assert local.get("p:1", "k", b"4") == b"v4"
    assert local.get("p:1", "k", b"5") is None  # the scope moved on: a miss
    local.put("p:1", "k", b"5", b"v5")  # replaces the older copy
    assert (len(local), local.size) == (1, 2)
    expired = LocalEntries(entries=10, max_bytes=1_000, ttl=0)
    expired.put("p:1", "k", b"4", b"v4")
    assert expired.get("p:1", "k", b"4") is None
    assert len(expired) == 0


def test_copies_are_bounded_by_count_and_bytes_least_recently_used_out_first() -> None:
    local = LocalEntries(entries=2, max_bytes=10, ttl=60)
    local.put("s", "a", b"0", b"aaaa")
    local.put("s", "b", b"0", b"bbbb")
    assert local.get("s", "a", b"0") == b"aaaa"  # a is now the most recent
    local.put("s", "c", b"0", b"cc")
    assert local.get("s", "b", b"0") is None
    local.put("s", "d", b"0", b"dddddd")  # three entries: a, the least recent, goes
    assert [local.get("s", k, b"0") for k in "acd"] == [None, b"cc", b"dddddd"]
    local.put("s", "f", b"0", b"fffff")  # c goes (count), then d too (6 + 5 > 10 bytes)
    assert [local.get("s", k, b"0") for k in "cdf"] == [None, None, b"fffff"]
    local.put("s", "e", b"0", b"e" * 11)  # larger than the whole layer: not kept
    assert local.get("s", "e", b"0") is None
    assert local.size <= 10


def test_a_drop_forgets_its_scopes_copies_only() -> None:
    local = LocalEntries(entries=10, max_bytes=1_000, ttl=60)
    local.put("p:1", "a", b"0", b"1")
    local.put("p:1", "b", b"0", b"2")
    local.put("l", "a", b"0", b"3")
    local.drop({"p:1", "p:unknown"})
    assert (len(local), local.size) == (1, 1)
    assert local.get("l", "a", b"0") == b"3"
