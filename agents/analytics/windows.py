"""Event-time windows of one ``analytics-facts`` partition, kept in a changelogged table (pure).

Time. Every fact carries its source event's ``occurredAt`` (as ``atMs``). The partition's
*clock* is the largest one seen over all its sources; each *source* (a topic and partition
of the facts stage) also keeps its own, and a fact is late when it is more than the grace
behind its own source's newest fact (so a source that lags another, the client events
behind the orders after an outage, still counts), or more than ``REACH_MS`` behind the
clock (every window it could reach is still kept). The analytics timer's wall time
(``wall``) only *closes* windows, so idle partitions close theirs too; it never makes a
fact late, or a worker back from an outage would count its whole backlog as late.

- A window (one minute, one hour or one UTC day of one scope) *closes* once the clock, or
  the wall time less ``WALL_SLACK_MS``, passes its end: it gets revision 1. One opened
  behind that point (a straggler within the grace) is closed at once.
- A fact older than its source's reach is *late*: counted (``lateEvents``, in the windows of
  the partition's present: its clock or the wall time, whichever is later), logged by
  the caller, and never applied.
- A fact within the grace whose window already closed revises it (next revision). Records
  collect what they closed or revised (``pending``); the next tick emits it, so a window
  revised by many records in a second is emitted once, with its last revision.
- Once the clock is an hour past a window's end (or the grace, if longer) it is
  forgotten.

Faust's own windowed tables keep their expiry index in memory, so windows restored from
the changelog after a restart would never close. Here the index is in the table: each
window is listed under the minute it closes in (``c|``) and the minute it is forgotten in
(``f|``), so closing and forgetting read the buckets of the minutes the clock passed,
never the whole table, and windows opened before a crash close after it like any other.

Records, not facts, are the unit of work: one record of ``analytics-facts`` carries many
facts of one scope (``agents.analytics.facts``), and a :class:`Change` gathers what all of
them do to the partition, then writes each touched key once, in an order that makes a
crash mid-record harmless (see :meth:`Change.commit`): every window remembers the offset
of the last record applied to it, so a redelivered record is skipped where it was applied
and applied where it was not; the partition's meta is written last, with that offset.

Exactly once under redelivery of a *fact* in another record (a replay, or the facts stage
redoing a batch after a crash): the ids of the facts applied by each record are kept
(``s|{partition}|{offset}``, with their source) until their source's reach passes their
minutes, and a copy of them in memory answers "seen?" without a table read. A redelivered
fact (from the same source: its source event's partition) is then either seen or older
than that reach (late, never applied); ids of late facts are kept in a ring of
``LATE_IDS`` per partition so a redelivered late fact is counted once.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, Literal

import orjson

from agents.analytics import metrics

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
SIZES: dict[str, int] = {"minute": MINUTE_MS, "hour": HOUR_MS, "day": DAY_MS}
# How long after its end a window is kept at least (the dashboard's last hour of minutes).
# (And at least ``REACH_MS``, the oldest a fact may be behind the clock and still count.)
KEEP_MS: dict[str, int] = {"minute": 61 * MINUTE_MS, "hour": 61 * MINUTE_MS,
                           "day": 61 * MINUTE_MS}
REACH_MS = 60 * MINUTE_MS
# The wall time closes windows this long after their end (the clock, at once): events of
# the minute just ended still in flight would otherwise revise every minute's window.
WALL_SLACK_MS = 5_000
# A minute's distinct visitors are kept for "visitors now" (the last five minutes).
VISITORS_KEEP_MS = 6 * MINUTE_MS
LATE_IDS = 1000
Window = dict[str, Any]
Verdict = Literal["applied", "duplicate", "late"]
Table = MutableMapping[str, Any]


def start_of(ms: int, size: str) -> int:
    """The start of the ``size`` window holding instant ``ms`` (UTC, epoch milliseconds)."""
    return ms - ms % SIZES[size]


def window_key(scope: str, size: str, start: int) -> str:
    """The table key of one window."""
    return f"w|{scope}|{size}|{start}"


def visitors_key(scope: str, minute: int) -> str:
    """The table key of the distinct viewers of one scope's minute."""
    return f"v|{scope}|{minute}"


def name_key(scope: str, product_id: str) -> str:
    """The table key of a product's name in a scope (for the top products; not windowed)."""
    return f"n|{scope}|{product_id}"


def scopes_key(partition: int) -> str:
    """The table key listing the scopes a partition holds (for the snapshot publisher)."""
    return f"p|{partition}"


def _ceil_minute(ms: int) -> int:
    return -(-ms // MINUTE_MS) * MINUTE_MS


def _copy(value: Any) -> Any:
    # Table values are decoded anew on each read in RocksDB; a dict table (unit tests)
    # would alias, so every read works on its own copy either way.
    return orjson.loads(orjson.dumps(value))


class Memory:
    """What one partition's records need to know fast, kept in memory beside the table.

    The applied fact ids still within reach of a redelivery (the table's ``s|{partition}|``
    entries, loaded on first use after a restart or an assignment, then kept in step with
    what records write), and the distinct marks (``d|``) known to be in the table, so a
    returning viewer costs no table read.
    """

    def __init__(self, table: Table, partition: int) -> None:
        self.prefix = f"s|{partition}|"
        self._entries: dict[str, list[str]] = {}  # table key -> the fact ids it holds
        # Per source: (last minute end of an entry's ids, its table key), soonest first.
        self._expiry: dict[str, list[tuple[int, str]]] = {}
        self._ids: dict[str, str] = {}  # fact id -> its entry's table key
        self.marks: set[str] = set()
        for key, stored in list(table.items()):
            if key.startswith(self.prefix):
                self.add(key, stored["ids"], int(stored["until"]), str(stored.get("source")))

    def __contains__(self, fact_id: object) -> bool:
        return fact_id in self._ids

    def add(self, key: str, ids: list[str], until: int, source: str) -> None:
        """Remember the ids one record of ``source`` applied (written under ``key``)."""
        self._entries[key] = ids
        heapq.heappush(self._expiry.setdefault(source, []), (until, key))
        for fact_id in ids:
            self._ids[fact_id] = key

    def expired(self, reach: Callable[[str], int]) -> list[str]:
        """Forget entries whose minutes their source's ``reach`` (the oldest time one of
        its facts may still be applied) passed; returns their table keys."""
        gone = []
        for source, heap in self._expiry.items():
            bound = reach(source)
            while heap and heap[0][0] <= bound:
                _, key = heapq.heappop(heap)
                for fact_id in self._entries.pop(key, ()):
                    if self._ids.get(fact_id) == key:
                        del self._ids[fact_id]
                gone.append(key)
        return gone


class Change:
    """What one record does to its partition: read through the table, written by ``commit``."""

    def __init__(self, table: Table, partition: int, offset: int, grace_ms: int,
                 memory: Memory, source: str = "") -> None:
        """``source``: the topic and partition the record's facts come from (ticks: none)."""
        self._table = table
        self.partition = partition
        self.offset = offset
        self.grace_ms = grace_ms
        self.source = source
        self._memory = memory
        stored = table.get(f"m|{partition}")
        self.meta: dict[str, Any] = {"clock": 0, "wall": 0, "closedThrough": 0,
                                     "finalThrough": 0, "lastOffset": -1, "sources": {}}
        if stored is not None:
            self.meta |= _copy(stored)
        self._windows: dict[str, Window] = {}  # read (copies), to be written if in _dirty
        self._dirty: set[str] = set()
        # (scope, size, start) -> the window this record changes (touched once), or None
        # for one it was applied to before a crash: most facts of a record share windows.
        self._ready: dict[tuple[str, str, int], Window | None] = {}
        self._emit: dict[str, Window] = {}  # closed windows to emit after the commit
        self._buckets: dict[str, list[str]] = {}
        self._first: dict[str, list[int]] = {"c": [], "f": []}  # bucket minutes written
        self._visitors: dict[str, list[str]] = {}
        self._visitors_known: dict[str, set[str]] = {}
        self._marks: set[str] = set()
        self._late: list[str] | None = None
        self._applied: list[str] = []
        self._applied_ids: set[str] = set()
        self._applied_until = 0
        self._deleted: list[str] = []
        self._new_scopes: set[str] = set()

    # -- time -------------------------------------------------------------------------

    @property
    def clock(self) -> int:
        """The largest event time applied (ms), over all sources."""
        return int(self.meta["clock"])

    def reach(self, source: str) -> int:
        """Facts of ``source`` older than this are late: its own newest fact minus the grace
        (a source is not judged by another's progress: one that lags, say the client
        events behind the orders after an outage, still counts), and never older than
        ``REACH_MS`` behind the clock, so every window a fact reaches is still kept."""
        own = int(self.meta["sources"].get(source, 0)) - self.grace_ms
        return max(own, self.clock - max(self.grace_ms, REACH_MS))

    @property
    def watermark(self) -> int:
        """Facts of this record's source older than this are late."""
        return self.reach(self.source)

    @property
    def closing(self) -> int:
        """Windows ending at or before this are closed: the clock, or the wall time less a
        little slack (events of the minute just ended may still be on their way)."""
        return max(self.clock, int(self.meta["wall"]) - WALL_SLACK_MS)

    def done_already(self) -> bool:
        """Whether this record was applied whole before (the meta is written last)."""
        return self.offset <= int(self.meta["lastOffset"])

    # -- facts ------------------------------------------------------------------------

    def verdict(self, fact_id: str, at_ms: int) -> Verdict:
        """Whether a fact is new, a duplicate, or late (nothing is recorded yet)."""
        if fact_id in self._memory or fact_id in self._applied_ids:
            return "duplicate"
        if at_ms < self.watermark:
            return "duplicate" if fact_id in self._late_ids() else "late"
        return "applied"

    def advance_wall(self, now_ms: int) -> None:
        """The analytics timer's wall time reached ``now_ms`` (it only closes windows)."""
        if now_ms > int(self.meta["wall"]):
            self.meta["wall"] = now_ms

    def advance_clock(self, at_ms: int) -> None:
        """A fact of this record was seen at ``at_ms`` (applied now or before)."""
        if at_ms > self.clock:
            self.meta["clock"] = at_ms
        sources = self.meta["sources"]
        if self.source and at_ms > int(sources.get(self.source, 0)):
            sources[self.source] = at_ms

    def update(self, scope: str, seller_id: str | None, at_ms: int,
               change: Callable[[metrics.Metrics, str], None]) -> None:
        """Apply ``change(metrics, size)`` to the scope's minute, hour and day at ``at_ms``."""
        for size, length in SIZES.items():
            slot = (scope, size, at_ms - at_ms % length)
            if slot in self._ready:  # touched by an earlier fact of this record
                window = self._ready[slot]
            else:
                window = self._ready[slot] = self._window(scope, seller_id, size, slot[2])
                if window is not None:
                    self._touch(window)
            if window is not None:
                change(window["metrics"], size)

    def count_late(self, scope: str, seller_id: str | None, fact_id: str) -> None:
        """A late fact: ``lateEvents`` + 1 in the present windows, and its id in the ring."""
        def late(m: metrics.Metrics, size: str) -> None:
            m["lateEvents"] += 1

        # Where the partition is now (by event or by wall time): its arrival, not its
        # past, so a late fact does not reopen a window that closed long ago.
        self.update(scope, seller_id, self.closing, late)
        self._late = [*self._late_ids(), fact_id][-LATE_IDS:]

    def applied(self, fact_id: str, at_ms: int) -> None:
        """Record an applied fact's id (kept until its minute is final)."""
        self._applied.append(fact_id)
        self._applied_ids.add(fact_id)
        self._applied_until = max(self._applied_until, start_of(at_ms, "minute") + MINUTE_MS)

    def visited(self, scope: str, viewer: str, at_ms: int) -> None:
        """``viewer`` was seen in the scope's minute at ``at_ms``."""
        key = visitors_key(scope, start_of(at_ms, "minute"))
        viewers = self._visitors.get(key)
        if viewers is None:
            stored = self._table.get(key)
            viewers = self._visitors[key] = list(stored) if stored is not None else []
            if stored is None:
                self._bucket("f", start_of(at_ms, "minute") + MINUTE_MS + VISITORS_KEEP_MS, key)
            self._visitors_known[key] = set(viewers)
        known = self._visitors_known[key]
        if viewer not in known:
            known.add(viewer)
            viewers.append(viewer)
            self._dirty.add(key)

    def distinct(self, key: str) -> bool:
        """Whether ``key`` (one distinct viewer or user of a day) is new; marks it."""
        known = self._memory.marks
        if key in self._marks or key in known:
            return False
        if key in self._table:
            known.add(key)
            return False
        self._marks.add(key)
        return True

    # -- windows ----------------------------------------------------------------------

    def _window(self, scope: str, seller_id: str | None, size: str, start: int
                ) -> Window | None:
        """The window (from this change, the table, or new); None if this record was
        applied to it before a crash (it is then emitted again if closed)."""
        key = window_key(scope, size, start)
        window = self._windows.get(key)
        if window is None:
            stored = self._table.get(key)
            if stored is None:
                end = start + SIZES[size]
                window = {
                    "scope": scope, "sellerId": seller_id, "size": size, "start": start,
                    "end": end, "p": self.partition, "closed": False, "revision": 0,
                    "lastOffset": -1, "metrics": metrics.empty(),
                }
                if end > int(self.meta["closedThrough"]):
                    # Otherwise it is behind the closing time: ``_touch`` closes it at once.
                    self._bucket("c", end, key)
                self._bucket("f", _ceil_minute(end + max(self.grace_ms, KEEP_MS[size])), key)
                if size == "day":
                    self._new_scopes.add(scope)
            else:
                window = _copy(stored)
            self._windows[key] = window
        if int(window["lastOffset"]) >= self.offset:
            if window["closed"]:
                self._emit[key] = window
            return None
        return window

    def _touch(self, window: Window) -> None:
        key = window_key(window["scope"], window["size"], int(window["start"]))
        if key not in self._dirty:
            self._dirty.add(key)
            if window["closed"]:
                window["revision"] += 1  # revised: emitted again, once per record
                self._emit[key] = window
            elif window["end"] <= self.closing:
                # Opened or revised behind the closing time (a straggler): closed at once.
                window["closed"] = True
                window["revision"] = 1
                self._emit[key] = window

    def _bucket(self, kind: str, minute: int, key: str) -> None:
        if kind == "f":
            # A key forgotten behind the swept minutes would never be: the next one then.
            minute = max(minute, int(self.meta["finalThrough"]) + MINUTE_MS)
        self._first[kind].append(minute)
        bucket_key = f"{kind}|{self.partition}|{minute}"
        bucket = self._buckets.get(bucket_key)
        if bucket is None:
            bucket = self._buckets[bucket_key] = list(self._table.get(bucket_key) or [])
        if key not in bucket:
            bucket.append(key)

    def _late_ids(self) -> list[str]:
        if self._late is None:
            self._late = list(self._table.get(f"l|{self.partition}") or [])
        return self._late

    # -- closing and forgetting --------------------------------------------------------

    def sweep(self) -> list[Window]:
        """Close the windows the closing time passed and forget those the clock made final.

        Returns the windows forgotten (the caller drops what belongs to them).
        """
        closing, final = start_of(self.closing, "minute"), start_of(self.clock, "minute")
        forgotten: list[Window] = []
        self._ready.clear()  # no fact is applied after the sweep
        # A partition's first time (its first fact, or first tick): nothing before it was
        # indexed, so the sweeps start there (0 is "never": no event is from 1970).
        # Buckets this very change wrote may lie before that (its facts span minutes).
        if closing and not self.meta["closedThrough"]:
            self.meta["closedThrough"] = min([closing, *self._first["c"]]) - MINUTE_MS
        if final and not self.meta["finalThrough"]:
            self.meta["finalThrough"] = min([final, *self._first["f"]]) - MINUTE_MS
        for minute in self._minutes("closedThrough", closing):
            for key in self._pending_bucket(f"c|{self.partition}|{minute}"):
                window = self._stored_window(key)
                if window is None:
                    continue
                if not window["closed"]:
                    window["closed"] = True
                    window["revision"] = max(1, int(window["revision"]))
                    self._dirty.add(key)
                    self._emit[key] = window
                elif int(window["lastOffset"]) >= self.offset:
                    self._emit[key] = window  # closed by this record before a crash
        for minute in self._minutes("finalThrough", final) if final else ():
            for key in self._pending_bucket(f"f|{self.partition}|{minute}"):
                if key.startswith("w|"):
                    window = self._stored_window(key)
                    if window is not None:
                        forgotten.append(window)
                self._delete(key)
        return forgotten

    def _minutes(self, field: str, through: int) -> Iterator[int]:
        start = int(self.meta[field]) + MINUTE_MS
        if through >= start:
            self.meta[field] = through
        return iter(range(start, through + 1, MINUTE_MS))

    def _pending_bucket(self, bucket_key: str) -> list[str]:
        keys = list(self._buckets.get(bucket_key) or self._table.get(bucket_key) or [])
        self._delete(bucket_key)
        return keys

    def _stored_window(self, key: str) -> Window | None:
        window = self._windows.get(key)
        if window is None:
            stored = self._table.get(key)
            if stored is None:
                return None
            window = self._windows[key] = _copy(stored)
        return window

    def _delete(self, key: str) -> None:
        self._deleted.append(key)
        self._dirty.discard(key)
        self._windows.pop(key, None)
        self._buckets.pop(key, None)
        self._visitors.pop(key, None)

    def delete(self, key: str) -> None:
        """Forget one more key with this record (the caller's own derived keys)."""
        self._delete(key)

    # -- writing ----------------------------------------------------------------------

    def commit(self) -> list[Window]:
        """Write every change once, in crash-safe order; returns the windows to emit.

        Order: index buckets (a bucket naming a window not yet written is skipped when
        swept), windows and visitor sets (each marked with this record's offset), the
        partition's scopes (a scope listed before its windows were written would be
        published as all zeros), distinct marks (after the day windows that counted them),
        the late ring, the applied ids, the windows to emit (``pending``), deletions (index
        buckets last), and the meta last: a record whose offset the meta holds was written
        whole. A crash in between leaves a prefix, which the redelivered record completes.
        """
        deleted = set(self._deleted)
        for key, bucket in self._buckets.items():
            if key not in deleted:
                self._table[key] = bucket
        for key in sorted(self._dirty):
            if key in self._windows:
                window = self._windows[key]
                window["lastOffset"] = self.offset
                self._table[key] = window
            elif key in self._visitors:
                self._table[key] = self._visitors[key]
        if self._new_scopes:
            known = self._table.get(scopes_key(self.partition)) or []
            self._table[scopes_key(self.partition)] = sorted({*known, *self._new_scopes})
        for key in sorted(self._marks):
            self._table[key] = 1
        self._memory.marks |= self._marks
        if self._late is not None:
            self._table[f"l|{self.partition}"] = self._late
        if self._applied:
            seen_key = f"{self._memory.prefix}{self.offset}"
            self._table[seen_key] = {"ids": self._applied, "until": self._applied_until,
                                     "source": self.source}
            self._memory.add(seen_key, self._applied, self._applied_until, self.source)
        for key in self._memory.expired(self.reach):
            deleted.add(key)
        # Windows an earlier record failed to emit are still owed (newest revision wins).
        emit = latest([*pending(self._table, self.partition), *self._emit.values()])
        if emit:
            # Until emitted, and before the deletions (a window may be closed and forgotten
            # by one record): a failed emission is retried by the redelivered record, which
            # finds them here whether or not it got as far as the meta.
            self._table[pending_key(self.partition)] = emit
        # An index bucket goes after the keys it lists: a crash in between leaves the
        # bucket, so the redelivered record deletes them again.
        for key in sorted(deleted, key=lambda k: (k.startswith(("c|", "f|")), k)):
            if key in self._table:
                del self._table[key]
        self.meta["lastOffset"] = max(self.offset, int(self.meta["lastOffset"]))
        self._table[f"m|{self.partition}"] = self.meta
        return emit


def latest(windows: list[Window]) -> list[Window]:
    """One entry per window (scope, size, start), the last given of each."""
    return list({(w["scope"], w["size"], w["start"]): w for w in windows}.values())


def pending_key(partition: int) -> str:
    """The table key of a partition's windows written but not yet emitted."""
    return f"e|{partition}"


def pending(table: Table, partition: int) -> list[Window]:
    """Windows a record wrote whose emission has not been confirmed (see ``emitted``)."""
    return list(_copy(table.get(pending_key(partition)) or []))


def emitted(table: Table, partition: int) -> None:
    """The pending windows reached MongoDB and ``analytics-windows``."""
    if pending_key(partition) in table:
        del table[pending_key(partition)]


def closed_windows(table: Table, partition: int) -> list[Window]:
    """Every closed window a partition still keeps (a full scan: once per restart)."""
    return [
        _copy(stored) for key, stored in list(table.items())
        if key.startswith("w|") and stored.get("p") == partition and stored["closed"]
    ]


def window(table: Table, scope: str, size: str, start: int) -> Window | None:
    """One window as stored (a copy), if it exists."""
    stored = table.get(window_key(scope, size, start))
    return None if stored is None else dict(_copy(stored))
