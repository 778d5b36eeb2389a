"""Emulate the broker-side fetch wait for brokers that answer empty fetches at once.

A Kafka broker holds an empty fetch for ``fetch.max.wait.ms`` before answering;
the embedded noida broker answers immediately, and aiokafka's fetcher then
re-sends at once, so every idle consumer spins a CPU core (measured: ~50% of a
core per consumer). This wraps aiokafka's per-node fetch so a fetch that came
back empty *faster* than the backoff waits out the rest. Against a compliant
broker an empty fetch already took ``fetch.max.wait.ms`` (>= backoff), so the
wrapper never sleeps; fetches that return records are never delayed.

Two paces: ``backoff`` while records flowed within the last ``IDLE_AFTER``
seconds, then the longer ``idle`` one (a consumer with nothing to read costs
~2% of a core instead of ~10% at 10 ms). A process that knows records are
coming (the gateway, right after sending a command) calls ``wake`` to end the
wait and go back to the short pace.

Under load the other extreme costs too: every fetch returns a record or two, and the
next is sent at once, so a busy consumer fetches hundreds of times a second for a few
records each (a broker's ``fetch.min.bytes`` with a short ``fetch.max.wait.ms`` is
Kafka's remedy; noida ignores the wait). ``interval`` is the least time between the
starts of one consumer's fetches: records arriving meanwhile come in the next fetch,
together, at most ``interval`` later (the records already fetched are never held).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.consumer.fetcher import Fetcher

_ORIGINAL_ATTR = "_mercato_original_proc_fetch_request"
_PACE_ATTR = "_mercato_pace"
# Records within this many seconds keep a consumer on the short pace.
IDLE_AFTER = 1.0


class _Pace:
    """One fetcher's idleness and the wait it is in, if any."""

    __slots__ = ("idle_since", "started", "waiting")

    def __init__(self) -> None:
        self.idle_since: float | None = None
        self.started = float("-inf")
        self.waiting: asyncio.Future[None] | None = None


def apply_empty_fetch_backoff(
    milliseconds: float, *, idle_milliseconds: float = 0, interval_milliseconds: float = 0
) -> None:
    """Install (or, with 0, remove) the backoff for every consumer in this process.

    ``idle_milliseconds``: the pace after ``IDLE_AFTER`` seconds without records (0 or
    anything not longer than ``milliseconds``: always ``milliseconds``).
    ``interval_milliseconds``: the least time between one consumer's fetches (0 = none).
    """
    original: Callable[..., Awaitable[bool]] = getattr(
        Fetcher, _ORIGINAL_ATTR, Fetcher._proc_fetch_request
    )
    if milliseconds <= 0:
        Fetcher._proc_fetch_request = original
        return
    backoff = milliseconds / 1000
    idle = max(backoff, idle_milliseconds / 1000)
    interval = interval_milliseconds / 1000

    @functools.wraps(original)
    async def proc_fetch_request(self: Fetcher, *args: Any, **kwargs: Any) -> bool:
        loop = asyncio.get_running_loop()
        # One pace per broker: a consumer fetches from each broker it reads at once.
        node = args[1] if len(args) > 1 else kwargs.get("node_id")
        paces: dict[Any, _Pace] | None = getattr(self, _PACE_ATTR, None)
        if paces is None:
            paces = {}
            setattr(self, _PACE_ATTR, paces)
        pace = paces.get(node)
        if pace is None:
            pace = paces[node] = _Pace()
        early = pace.started + interval - loop.time()
        if early > 0 and not await _paused(pace, early):
            return False  # cancelled before the request went out: nothing to lose
        started = pace.started = loop.time()
        needs_wakeup = await original(self, *args, **kwargs)
        # needs_wakeup is False when the response added neither records nor errors.
        if needs_wakeup:
            pace.idle_since = None
            return needs_wakeup
        now = loop.time()
        if pace.idle_since is None:
            pace.idle_since = started
        wait = idle if now - pace.idle_since >= IDLE_AFTER else backoff
        remaining = wait - (now - started)
        if remaining > 0:
            # A cancelled wait returns quietly, as the wrapped method's contract wants (a
            # cancelled fetch task is "no longer of interest"; Fetcher.close() awaits it and
            # would otherwise fail). Nothing is lost: this response was empty.
            await _paused(pace, remaining)
        return needs_wakeup

    setattr(Fetcher, _ORIGINAL_ATTR, original)
    Fetcher._proc_fetch_request = proc_fetch_request


def wake(consumer: AIOKafkaConsumer) -> None:
    """Records are about to arrive for ``consumer``: fetch now and keep the short pace."""
    fetcher = getattr(consumer, "_fetcher", None)
    paces: dict[Any, _Pace] = getattr(fetcher, _PACE_ATTR, None) or {}
    for pace in paces.values():
        _wake(pace)


def _wake(pace: _Pace) -> None:
    pace.idle_since = None
    if pace.waiting is not None:
        _end_wait(pace.waiting)


async def _paused(pace: _Pace, seconds: float) -> bool:
    """Wait ``seconds`` (or until ``wake``); False if cancelled meanwhile."""
    loop = asyncio.get_running_loop()
    waiting = pace.waiting = loop.create_future()
    timer = loop.call_later(seconds, _end_wait, waiting)
    try:
        await waiting
    except asyncio.CancelledError:
        return False
    finally:
        timer.cancel()
        pace.waiting = None
    return True


def _end_wait(waiting: asyncio.Future[None]) -> None:
    if not waiting.done():
        waiting.set_result(None)
