"""Concurrent loads of one key share a single call: no stampede when a cache entry expires.

A busy client's requests all miss at once when its cached entry (profile, not-before
instant) expires; without this, every request arriving until the first read returns
starts a read of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """At most one ``load`` per key under way; its callers share the result or the error."""

    def __init__(self) -> None:
        self._calls: dict[K, asyncio.Task[V]] = {}

    def load(
        self, key: K, load: Callable[[], Awaitable[V]], keep: Callable[[V], object]
    ) -> Awaitable[V]:
        """The result of ``load()``, or of the load of ``key`` under way if there is one
        (this call's ``load`` and ``keep`` are then not used).

        ``keep`` is given the result, to cache it, unless ``forget(key)`` was called while
        it was loaded. Shielded: a caller that goes away does not cancel the load the
        others wait for.
        """
        call = self._calls.get(key)
        if call is None:
            call = self._calls[key] = asyncio.ensure_future(self._call(key, load, keep))
        return asyncio.shield(call)

    def forget(self, key: K) -> None:
        """Let the next ``load(key)`` start afresh, and drop the result of the one under way."""
        self._calls.pop(key, None)

    async def _call(
        self, key: K, load: Callable[[], Awaitable[V]], keep: Callable[[V], object]
    ) -> V:
        this = asyncio.current_task()
        try:
            value = await load()
        finally:
            current = self._calls.get(key) is this
            if current:
                del self._calls[key]
        if current:
            keep(value)
        return value

    def __len__(self) -> int:
        return len(self._calls)
