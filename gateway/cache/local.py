"""The response cache's in-process layer: this gateway's copies of Redis entries.

A copy is kept with the generation of its scope it was read or filled under, and is
served only when a generation read *sent after the request arrived* names that same
generation (``gateway.cache.generations``). So this layer never widens the staleness of
the shared cache: it saves the entry's transfer and the round trip per read, not the
check. Bounded by entries and bytes (least recently used out first) and by a short ttl,
the backstop for a Redis that went back in time (restored from an older snapshot) and so
names an old generation again; a flushed or expired generation key restarts from the
server's clock instead (``gateway.cache.store``), so it never does.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import NamedTuple


class _Copy(NamedTuple):
    generation: bytes
    entry: bytes
    expires: float


class LocalEntries:
    """Copies by (scope, key), at most ``entries`` of them and ``max_bytes`` in all."""

    def __init__(self, *, entries: int, max_bytes: int, ttl: float) -> None:
        self._max_entries = entries
        self._max_bytes = max_bytes
        self._ttl = ttl
        self._copies: OrderedDict[tuple[str, str], _Copy] = OrderedDict()
        # The keys held per scope, so a drop of a scope frees its copies at once.
        self._by_scope: dict[str, set[str]] = {}
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._copies)

    @property
    def size(self) -> int:
        """Bytes held in entries."""
        return self._bytes

    def get(self, scope: str, key: str, generation: bytes) -> bytes | None:
        """The copy of ``key`` if it is of ``generation`` and younger than the ttl."""
        slot = (scope, key)
        copy = self._copies.get(slot)
        if copy is None or copy.generation != generation:
            return None
        if copy.expires <= time.monotonic():
            self._remove(slot)
            return None
        self._copies.move_to_end(slot)
        return copy.entry

    def put(self, scope: str, key: str, generation: bytes, entry: bytes) -> None:
        """Keep ``entry`` as ``key``'s copy of ``generation`` (it replaces any older one)."""
        if len(entry) > self._max_bytes or self._max_entries <= 0:
            return
        slot = (scope, key)
        if slot in self._copies:
            self._remove(slot)
        self._copies[slot] = _Copy(generation, entry, time.monotonic() + self._ttl)
        self._by_scope.setdefault(scope, set()).add(key)
        self._bytes += len(entry)
        while len(self._copies) > self._max_entries or self._bytes > self._max_bytes:
            self._remove(next(iter(self._copies)))

    def drop(self, scopes: Iterable[str]) -> None:
        """Forget every copy of ``scopes`` (their generation moved: none would be served)."""
        for scope in scopes:
            for key in list(self._by_scope.get(scope, ())):
                self._remove((scope, key))

    def _remove(self, slot: tuple[str, str]) -> None:
        copy = self._copies.pop(slot)
        self._bytes -= len(copy.entry)
        scope, key = slot
        keys = self._by_scope[scope]
        keys.discard(key)
        if not keys:
            del self._by_scope[scope]
