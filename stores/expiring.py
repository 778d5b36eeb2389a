"""A bounded map whose entries expire: for lookups an agent may see a few seconds late."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Expiring(Generic[K, V]):
    """At most ``size`` entries, each kept ``ttl`` seconds; the least recently used goes first."""

    def __init__(self, *, ttl: float, size: int) -> None:
        self._ttl = ttl
        self._size = size
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    async def get(
        self, key: K, load: Callable[[], Awaitable[V]], *,
        keep: Callable[[V], bool] | None = None,
    ) -> V:
        """The value of ``key``: cached if fresh, else ``load()``-ed (and kept if ``keep``)."""
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            self._entries.move_to_end(key)
            return entry[1]
        value = await load()
        if keep is not None and not keep(value):
            return value
        self._entries[key] = (now + self._ttl, value)
        self._entries.move_to_end(key)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return value
