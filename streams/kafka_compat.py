"""Emulate the broker-side fetch wait for brokers that answer empty fetches at once.

A Kafka broker holds an empty fetch for ``fetch.max.wait.ms`` before answering;
the embedded noida broker answers immediately, and aiokafka's fetcher then
re-sends at once, so every idle consumer spins a CPU core (measured: ~50% of a
core per consumer). This wraps aiokafka's per-node fetch so a fetch that came
back empty *faster* than ``backoff`` waits out the rest. Against a compliant
broker an empty fetch already took ``fetch.max.wait.ms`` (>= backoff), so the
wrapper never sleeps; fetches that return records are never delayed.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.consumer.fetcher import Fetcher

_ORIGINAL_ATTR = "_mercato_original_proc_fetch_request"


def apply_empty_fetch_backoff(milliseconds: float) -> None:
    """Install (or, with 0, remove) the backoff for every consumer in this process."""
    original: Callable[..., Awaitable[bool]] = getattr(
        Fetcher, _ORIGINAL_ATTR, Fetcher._proc_fetch_request
    )
    if milliseconds <= 0:
        Fetcher._proc_fetch_request = original
        return
    backoff = milliseconds / 1000

    @functools.wraps(original)
    async def proc_fetch_request(self: Fetcher, *args: Any, **kwargs: Any) -> bool:
        loop = asyncio.get_running_loop()
        started = loop.time()
        needs_wakeup = await original(self, *args, **kwargs)
        # needs_wakeup is False when the response added neither records nor errors.
        if not needs_wakeup:
            remaining = backoff - (loop.time() - started)
            if remaining > 0:
                try:
                    await asyncio.sleep(remaining)
                except asyncio.CancelledError:
                    # The wrapped method's own contract: a cancelled fetch task returns
                    # quietly ("no longer of interest"); Fetcher.close() awaits it and
                    # would otherwise fail. Nothing is lost: this response was empty.
                    return needs_wakeup
        return needs_wakeup

    setattr(Fetcher, _ORIGINAL_ATTR, original)
    Fetcher._proc_fetch_request = proc_fetch_request
