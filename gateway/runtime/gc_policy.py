"""Garbage collection that does not stall the gateway's event loop.

CPython's full (generation 2) collection walks every tracked object, and nothing else
runs meanwhile. A gateway holding 10,000 push connections holds a few million of them
(each connection's request, response, protocol, buffers and subscriptions), so every
full collection stopped delivery for 77 ms at the first and up to ~1 s at 10,000
connections (docs/performance.md, "Push").

The policy here: once a tick, collect the two young generations (cheap, they hold only
what was made since the last tick) and ``gc.freeze()`` what survived. Frozen objects
live in the permanent generation, which no automatic collection walks, so a full
collection only ever walks what survived since the last tick. ``gc.freeze`` merges
linked lists: it costs the same at 10 objects as at 10 million.

The price: a frozen object that later becomes garbage *inside a reference cycle* is
never collected by the automatic collections (reference counting still frees every
acyclic one). Such garbage comes from churn, above all connections closing
(gateway.push.ws breaks the cycles aiohttp leaves in a closed WebSocket, so a closed
one is freed at once; this is the backstop), so after enough closes, or an hour,
(``GcLimits``) one full collection runs over everything (unfreeze, collect, freeze).
That one does stall the loop, as long as the old full collections did (~0.085 s per
1,000 open connections), but once per ``collect_after_closed`` closed connections or
per hour, not every few seconds; ``GcPauses`` times every full collection for
/metrics (``mercato_gc_full_pause_seconds``) so an operator sees what it costs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable

from prometheus_client import CollectorRegistry, Histogram

log = logging.getLogger(__name__)

FULL = 2
PAUSE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Action(enum.Enum):
    """What one tick of the policy does."""

    FREEZE = "freeze"
    COLLECT = "collect"


@dataclasses.dataclass(frozen=True, slots=True)
class GcLimits:
    """When frozen garbage is worth a full collection."""

    # Connections closed since the last full collection before the next one runs...
    collect_after_closed: int
    # ...or this share of the connections open now, if larger: the stall of a full
    # collection grows with the open connections, so it is paid at most once per
    # that share of them turned over.
    collect_share: float = 1.0
    # ...and in any case after this many seconds: the backstop for cycles that are not a
    # closed connection's (an HTTP request that was in flight at a tick, frozen with it).
    collect_every: float = 3600.0


class GcPolicy:
    """Decides, once a tick, whether freezing suffices or a full collection is due."""

    def __init__(self, limits: GcLimits, *, now: float = 0.0) -> None:
        self.limits = limits
        self._closed_at_collect = 0
        self._collected_at = now

    def decide(self, *, open_now: int, closed_total: int, now: float) -> Action:
        """``closed_total`` counts every connection ever closed (it only grows)."""
        limits = self.limits
        closed = closed_total - self._closed_at_collect
        if closed >= max(limits.collect_after_closed, limits.collect_share * open_now):
            return Action.COLLECT
        if now - self._collected_at >= limits.collect_every:
            return Action.COLLECT
        return Action.FREEZE

    def collected(self, closed_total: int, now: float) -> None:
        """A full collection ran at ``now``, when ``closed_total`` connections had closed."""
        self._closed_at_collect = closed_total
        self._collected_at = now


class GcPauses:
    """Times every full collection (automatic or ours) through ``gc.callbacks``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.count = 0
        self.seconds = 0.0
        self.longest = 0.0
        self._began: float | None = None
        self._histogram = Histogram(
            "mercato_gc_full_pause_seconds",
            "Seconds the event loop stood still in each full (generation 2) garbage collection",
            buckets=PAUSE_BUCKETS, registry=registry,
        ) if registry is not None else None

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if info.get("generation") != FULL:
            return
        if phase == "start":
            self._began = time.perf_counter()
        elif self._began is not None:
            pause = time.perf_counter() - self._began
            self._began = None
            self.count += 1
            self.seconds += pause
            self.longest = max(self.longest, pause)
            if self._histogram is not None:
                self._histogram.observe(pause)


def young_collect_and_freeze() -> None:
    """One ordinary tick: free the young cyclic garbage, then freeze the survivors."""
    # Garbage made since the last tick is collected now rather than frozen for good.
    gc.collect(1)
    gc.freeze()


def full_collect() -> int:
    """Collect everything, frozen objects included, then freeze the survivors again."""
    gc.unfreeze()
    try:
        return gc.collect()
    finally:
        gc.freeze()


async def govern(
    policy: GcPolicy,
    connections: Callable[[], tuple[int, int]],
    *,
    tick: float,
) -> None:
    """Apply ``policy`` every ``tick`` seconds; ``connections()`` is (open, closed ever)."""
    while True:
        await asyncio.sleep(tick)
        open_now, closed_total = connections()
        now = time.monotonic()
        if policy.decide(open_now=open_now, closed_total=closed_total, now=now) is Action.COLLECT:
            began = time.perf_counter()
            unreachable = full_collect()
            log.info(
                "full garbage collection after connections closed",
                extra={"open": open_now, "unreachable": unreachable,
                       "pause_ms": round((time.perf_counter() - began) * 1000, 1)},
            )
            policy.collected(closed_total, time.monotonic())
        else:
            young_collect_and_freeze()


@dataclasses.dataclass(slots=True)
class Governor:
    """The policy's task and probe for one application's lifetime."""

    pauses: GcPauses
    task: asyncio.Task[None] | None = None


@contextlib.asynccontextmanager
async def governed(
    policy: GcPolicy | None,
    connections: Callable[[], tuple[int, int]],
    registry: CollectorRegistry,
    *,
    tick: float = 1.0,
) -> AsyncIterator[Governor]:
    """Time full collections for the app's lifetime and, unless ``policy`` is None, govern
    them; on exit the probe is removed and everything is unfrozen (a test process that
    builds many apps must not keep their objects forever)."""
    governor = Governor(GcPauses(registry))
    gc.callbacks.append(governor.pauses)
    if policy is not None:
        governor.task = asyncio.create_task(govern(policy, connections, tick=tick),
                                            name="gc-policy")
    try:
        yield governor
    finally:
        if governor.task is not None:
            governor.task.cancel()
            await asyncio.wait({governor.task})
            gc.unfreeze()
        gc.callbacks.remove(governor.pauses)
