"""The gateway's garbage collection policy: when it freezes, when it collects everything."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref

from prometheus_client import CollectorRegistry

from gateway.runtime.gc_policy import (
    Action,
    GcLimits,
    GcPauses,
    GcPolicy,
    full_collect,
    governed,
    young_collect_and_freeze,
)


def test_it_freezes_until_enough_connections_have_closed() -> None:
    policy = GcPolicy(GcLimits(collect_after_closed=100, collect_share=0.5))
    assert policy.decide(open_now=10, closed_total=0, now=1) is Action.FREEZE
    assert policy.decide(open_now=10, closed_total=99, now=1) is Action.FREEZE
    assert policy.decide(open_now=10, closed_total=100, now=1) is Action.COLLECT


def test_with_many_open_a_share_of_them_must_close_first() -> None:
    # The stall grows with the open connections, so it is paid once per share turned over.
    policy = GcPolicy(GcLimits(collect_after_closed=100, collect_share=0.5))
    assert policy.decide(open_now=1_000, closed_total=499, now=1) is Action.FREEZE
    assert policy.decide(open_now=1_000, closed_total=500, now=1) is Action.COLLECT


def test_closes_and_time_are_counted_from_the_last_full_collection() -> None:
    policy = GcPolicy(GcLimits(collect_after_closed=100, collect_every=60), now=0)
    policy.collected(closed_total=150, now=50)
    assert policy.decide(open_now=0, closed_total=249, now=109) is Action.FREEZE
    assert policy.decide(open_now=0, closed_total=250, now=109) is Action.COLLECT


def test_without_churn_a_full_collection_still_runs_now_and_then() -> None:
    # Cycles that are not a closed connection's (a request frozen in flight) are freed too.
    policy = GcPolicy(GcLimits(collect_after_closed=100, collect_every=60), now=10)
    assert policy.decide(open_now=5, closed_total=0, now=69) is Action.FREEZE
    assert policy.decide(open_now=5, closed_total=0, now=70) is Action.COLLECT


class Cyclic:
    """An object in a reference cycle with itself."""

    def __init__(self) -> None:
        self.me = self


def test_frozen_cycles_survive_ticks_and_a_full_collection_frees_them() -> None:
    try:
        kept = Cyclic()
        ref = weakref.ref(kept)
        young_collect_and_freeze()
        del kept
        young_collect_and_freeze()
        gc.collect()  # an automatic full collection does not walk frozen objects either
        assert ref() is not None
        assert full_collect() >= 1
        assert ref() is None
        assert gc.get_freeze_count() > 0  # the survivors are frozen again
    finally:
        gc.unfreeze()


def test_the_probe_times_only_full_collections() -> None:
    registry = CollectorRegistry()
    pauses = GcPauses(registry)
    gc.callbacks.append(pauses)
    try:
        gc.collect(0)
        assert pauses.count == 0
        gc.collect()
    finally:
        gc.callbacks.remove(pauses)
    assert pauses.count == 1
    assert 0 < pauses.seconds == pauses.longest
    assert registry.get_sample_value("mercato_gc_full_pause_seconds_count") == 1


async def test_governed_ticks_collect_when_due_and_unfreeze_on_exit() -> None:
    policy = GcPolicy(GcLimits(collect_after_closed=1), now=time.monotonic())
    closed = [0]
    registry = CollectorRegistry()
    async with governed(policy, lambda: (0, closed[0]), registry, tick=0.01) as governor:
        await asyncio.sleep(0.05)
        assert gc.get_freeze_count() > 0
        assert governor.pauses.count == 0
        closed[0] = 1
        await asyncio.sleep(0.05)
        assert governor.pauses.count == 1  # one full collection, then freezing again
    assert gc.get_freeze_count() == 0
    assert governor.pauses not in gc.callbacks


async def test_without_a_policy_only_the_probe_runs() -> None:
    async with governed(None, lambda: (0, 0), CollectorRegistry()) as governor:
        assert governor.task is None
        assert governor.pauses in gc.callbacks
    assert governor.pauses not in gc.callbacks
