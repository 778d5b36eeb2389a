"""Event-time windows of one ``analytics-facts`` partition, kept in changelogged tables (pure).

Time: every fact carries its source event's ``occurredAt``. The partition's *clock* is the
largest one seen (and the analytics timer's wall time, so idle partitions move on too);
its *watermark* is the clock minus the grace period.

- A window (one minute, one hour or one UTC day of one scope) *closes* once the clock
  passes its end: it is emitted with revision 1.
- An event older than the watermark is *late*: counted (``lateEvents``, in the windows
  the clock is in when it arrives), logged by the caller, and never applied.
- An event within the grace whose window already closed revises it: the window is
  emitted again with the next revision. Once the watermark passes a window's end it is
  final (no event can reach it); minute windows are kept an hour more for the dashboard.

Faust's own windowed tables keep their expiry index in memory, so windows restored from
the changelog after a restart would never close. Here the index *is* the table: closing
scans the partition's windows whenever the clock enters a new minute, so windows opened
before a crash close after it like any other.

Exactly once under redelivery: every applied fact's id is kept in ``seen`` (changelogged)
with the end of its minute, and forgotten once that minute is final. A redelivered fact
is then either found there or older than the watermark (late, never applied), so the bound
is the facts of the last ``grace`` + one minute per partition. Ids of late facts are kept
in a ring of ``LATE_IDS`` per partition, so a redelivered late fact is counted once.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any, Literal

import orjson

from agents.analytics import metrics

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
SIZES: dict[str, int] = {"minute": MINUTE_MS, "hour": HOUR_MS, "day": DAY_MS}
# How long after its end a window is kept at least (the dashboard's last hour of minutes).
KEEP_MS: dict[str, int] = {"minute": 61 * MINUTE_MS, "hour": 0, "day": 0}
LATE_IDS = 1000
Window = dict[str, Any]
Verdict = Literal["applied", "duplicate", "late"]


def start_of(ms: int, size: str) -> int:
    """The start of the ``size`` window holding instant ``ms`` (UTC, epoch milliseconds)."""
    return ms - ms % SIZES[size]


def window_key(scope: str, size: str, start: int) -> str:
    """The table key of one window."""
    return f"w|{scope}|{size}|{start}"


def _copy(value: Any) -> Any:
    # Table values are decoded anew on each read in RocksDB; a dict table (unit tests)
    # would alias, so every read works on its own copy either way.
    return orjson.loads(orjson.dumps(value))


class PartitionWindows:
    """The windows, clock and seen ids of one partition."""

    def __init__(
        self,
        windows: MutableMapping[str, Any],
        seen: MutableMapping[str, Any],
        *,
        partition: int,
        grace_ms: int,
        seen_prefix: str = "",
    ) -> None:
        self._windows = windows
        self._seen = seen
        self.partition = partition
        self.grace_ms = grace_ms
        self._meta_key = f"m|{partition}"
        # Apart from the clock (written with nearly every fact), so that stays small.
        self._late_key = f"l|{partition}"
        self._seen_prefix = f"{seen_prefix}{partition}|"

    @property
    def meta(self) -> dict[str, Any]:
        """``{clock, closedThrough}`` of the partition."""
        stored = self._windows.get(self._meta_key)
        meta: dict[str, Any] = (
            {"clock": 0, "closedThrough": 0} if stored is None else _copy(stored)
        )
        return meta

    @property
    def clock(self) -> int:
        """The largest event time seen (ms)."""
        return int(self.meta["clock"])

    @property
    def watermark(self) -> int:
        """Events older than this are late."""
        return self.clock - self.grace_ms

    def check(self, fact_id: str, at_ms: int) -> Verdict:
        """Whether a fact is new, a duplicate, or late (nothing is recorded yet)."""
        if self._seen_prefix + fact_id in self._seen:
            return "duplicate"
        if at_ms < self.watermark:
            return "duplicate" if fact_id in self._late_ids() else "late"
        return "applied"

    def mark_seen(self, fact_id: str, at_ms: int) -> None:
        """Record an applied fact until its minute is final (write it last: see decider)."""
        self._seen[self._seen_prefix + fact_id] = start_of(at_ms, "minute") + MINUTE_MS

    def mark_late(self, fact_id: str) -> None:
        """Record a late fact in the partition's bounded ring of late ids."""
        self._windows[self._late_key] = [*self._late_ids(), fact_id][-LATE_IDS:]

    def _late_ids(self) -> list[str]:
        return list(self._windows.get(self._late_key) or [])

    def update(
        self,
        scope: str,
        seller_id: str | None,
        at_ms: int,
        fact_id: str,
        change: Callable[[metrics.Metrics, str], None],
    ) -> list[Window]:
        """Apply ``change(metrics, size)`` to the scope's minute, hour and day at ``at_ms``.

        A window whose ``lastFact`` is ``fact_id`` has it applied already (a redelivery
        after a crash mid-record) and is left alone. Returns the windows that had closed
        already: revised (next revision), or unchanged on such a redelivery; either way
        they must be emitted (again).
        """
        revised: list[Window] = []
        for size, length in SIZES.items():
            start = start_of(at_ms, size)
            key = window_key(scope, size, start)
            stored = self._windows.get(key)
            window: Window = _copy(stored) if stored is not None else {
                "scope": scope, "sellerId": seller_id, "size": size, "start": start,
                "end": start + length, "p": self.partition, "closed": False, "revision": 0,
                "lastFact": None, "metrics": metrics.empty(),
            }
            if window["lastFact"] == fact_id:
                if window["closed"]:
                    revised.append(window)
                continue
            change(window["metrics"], size)
            window["lastFact"] = fact_id
            if window["closed"]:
                window["revision"] += 1
                revised.append(window)
            self._windows[key] = window
        return revised

    def closed_windows(self) -> list[Window]:
        """Every closed window this partition still keeps."""
        return [
            _copy(stored) for key, stored in list(self._windows.items())
            if key.startswith("w|") and stored.get("p") == self.partition and stored["closed"]
        ]

    def window(self, scope: str, size: str, start: int) -> Window | None:
        """One window as stored (a copy), if it exists."""
        stored = self._windows.get(window_key(scope, size, start))
        return None if stored is None else dict(_copy(stored))

    def advance(self, to_ms: int) -> tuple[list[Window], list[Window]]:
        """Move the clock to ``to_ms`` (never back); close and forget windows it passed.

        Returns (windows closed now, to emit with revision 1; windows forgotten).
        """
        meta = self.meta
        if to_ms > meta["clock"]:
            meta["clock"] = to_ms
            self._windows[self._meta_key] = meta
        minute = start_of(int(meta["clock"]), "minute")
        if minute <= meta["closedThrough"]:
            return [], []
        closed, forgotten = self._sweep(int(meta["clock"]))
        meta["closedThrough"] = minute
        self._windows[self._meta_key] = meta
        return closed, forgotten

    def _sweep(self, clock: int) -> tuple[list[Window], list[Window]]:
        closed: list[Window] = []
        forgotten: list[Window] = []
        watermark = clock - self.grace_ms
        for key, stored in list(self._windows.items()):
            if not key.startswith("w|") or stored.get("p") != self.partition:
                continue
            end = int(stored["end"])
            window = _copy(stored)
            if not window["closed"] and end <= clock:
                window["closed"] = True
                window["revision"] = 1
                self._windows[key] = window
                closed.append(window)
            if end + max(self.grace_ms, KEEP_MS[window["size"]]) <= clock:
                forgotten.append(window)
                del self._windows[key]
        for key, end in list(self._seen.items()):
            if key.startswith(self._seen_prefix) and int(end) <= watermark:
                del self._seen[key]
        return closed, forgotten
