"""Analytics read models: closed windows (reports) and each scope's live snapshot.

Written only by the analytics agent: a closed window is upserted under its key, a
revision never replaced by an older one; the snapshot of a scope is replaced whole.

Reports read the coarsest windows that tile their range (:func:`tiles`). Every window of
a size holds the additive metrics of the minutes it spans, so the sums are those of the
minute windows; only the day windows carry distinct counts (``viewers``, ``activeUsers``),
which reports leave out (``gateway.analytics.reports``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import IndexModel
from pymongo.asynchronous.database import AsyncDatabase

WINDOWS = "analytics_windows"
SNAPSHOTS = "analytics_snapshots"
INDEXES = {
    WINDOWS: [
        IndexModel([("size", 1), ("scope", 1), ("start", 1)], name="by_size_scope_start"),
        # An admin's report by seller names no scope: a size's windows in a time range.
        IndexModel([("size", 1), ("start", 1)], name="by_size_start"),
    ],
}
# Coarsest first: the order reports tile a range in.
SIZES: dict[str, timedelta] = {
    "day": timedelta(days=1), "hour": timedelta(hours=1), "minute": timedelta(minutes=1),
}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
Tile = tuple[str, datetime, datetime]


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _floor(moment: datetime, step: timedelta) -> datetime:
    return moment - (moment - EPOCH) % step


def _ceil(moment: datetime, step: timedelta) -> datetime:
    floor = _floor(moment, step)
    return floor if floor == moment else floor + step


def tiles(start: datetime, end: datetime) -> list[Tile]:
    """The coarsest windows (size, start, end) spanning the minute windows starting in
    [start, end), in time order: whole UTC days, whole hours at the edges, then minutes.

    Minute windows starting in [start, end) are those of [ceil(start), ceil(end)) to the
    minute, so any instants are accepted.
    """
    return _cover(_ceil(start, SIZES["minute"]), _ceil(end, SIZES["minute"]), list(SIZES))


def _cover(lo: datetime, hi: datetime, sizes: list[str]) -> list[Tile]:
    if lo >= hi:
        return []
    size, *finer = sizes
    step = SIZES[size]
    # The finest size (minutes) fits any range it is given: both ends are on minutes.
    whole_lo, whole_hi = (_ceil(lo, step), _floor(hi, step)) if finer else (lo, hi)
    if whole_lo >= whole_hi:
        return _cover(lo, hi, finer)
    whole = [(size, whole_lo + i * step, whole_lo + (i + 1) * step)
             for i in range((whole_hi - whole_lo) // step)]
    return [*_cover(lo, whole_lo, finer), *whole, *_cover(whole_hi, hi, finer)]


class AnalyticsRepository:
    """Closed windows and snapshots."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._windows = db[WINDOWS]
        self._snapshots = db[SNAPSHOTS]

    async def upsert_window(self, window: dict[str, Any]) -> bool:
        """Store a closed window unless a later revision of it is stored already."""
        key = f"{window['scope']}|{window['size']}|{window['start']}"
        stored = await self._windows.find_one({"_id": key}, {"revision": 1})
        if stored is not None and int(stored.get("revision", 0)) > int(window["revision"]):
            return False
        m = window["metrics"]
        doc = {
            "scope": window["scope"], "sellerId": window["sellerId"], "size": window["size"],
            "start": _at(int(window["start"])), "end": _at(int(window["end"])),
            "revision": int(window["revision"]),
            "metrics": {k: v for k, v in m.items() if k != "products"},
            "products": [{"productId": pid, **p} for pid, p in sorted(m["products"].items())],
        }
        await self._windows.replace_one({"_id": key}, doc, upsert=True)
        return True

    async def report_windows(
        self, *, start: datetime, end: datetime, scopes: Iterable[str] | None = None,
        sellers_only: bool = False,
    ) -> list[dict[str, Any]]:
        """Closed windows of the given scopes whose sums are those of their closed minute
        windows starting in [start, end): the :func:`tiles`, finer where one is not closed.

        A day (or hour) still open has no window yet, but its closed hours and minutes
        count. A scope's windows close in time order (one partition's clock), so once one
        of its windows is read, every window of it that ends earlier and holds anything is
        closed too: where such a tile is missing, nothing happened. Finer windows are
        therefore read, per scope, only after the end of its last window read so far.
        (Hazard: this holds as long as ``agents.analytics.windows`` closes, in one sweep,
        every window of a partition whose end its closing time passed.)
        """
        wanted = None if scopes is None else sorted(set(scopes))
        plan = tiles(start, end)
        found: list[dict[str, Any]] = []
        reached: dict[str, datetime] = {}  # scope -> the end of its latest window read
        span: tuple[datetime, datetime] | None = None  # the coarser tiles, contiguous
        for size in SIZES:
            own = [(lo, hi) for tile_size, lo, hi in plan if tile_size == size]
            queries = [_of(size, lo, hi, wanted) for lo, hi in _runs(own)]
            if span is not None:
                queries += _not_closed(size, span, reached, wanted)
            # Disjoint (in time or in scope), and each one index range: one query each,
            # as the embedded server plans no $or on an index.
            level = [doc for query in queries async for doc in self._windows.find(query)]
            for doc in level:
                scope, doc_end = doc["scope"], doc["end"]
                if scope not in reached or reached[scope] < doc_end:
                    reached[scope] = doc_end
            found += level
            if own:
                lo, hi = own[0][0], own[-1][1]
                span = (lo, hi) if span is None else (min(lo, span[0]), max(hi, span[1]))
        # Filtered here: the marketplace's windows are a few among many sellers'.
        return [doc for doc in found if not sellers_only or doc.get("sellerId") is not None]

    async def put_snapshot(self, scope: str, snapshot: dict[str, Any]) -> None:
        """Replace the live snapshot of ``scope``."""
        await self._snapshots.replace_one({"_id": scope}, {"snapshot": snapshot}, upsert=True)

    async def snapshot(self, scope: str) -> dict[str, Any] | None:
        """The last snapshot of ``scope``, if one was built."""
        doc = await self._snapshots.find_one({"_id": scope})
        return None if doc is None else dict(doc["snapshot"])


def _of(size: str, lo: datetime, hi: datetime, scopes: list[str] | None) -> dict[str, Any]:
    """One query of a report: by_size_scope_start's range (by_size_start's if no scope is
    named); one scope is an equality, which the embedded server indexes and $in not."""
    query: dict[str, Any] = {"size": size, "start": {"$gte": lo, "$lt": hi}}
    if scopes is not None:
        query["scope"] = scopes[0] if len(scopes) == 1 else {"$in": scopes}
    return query


def _runs(spans: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """Adjacent spans (in time order) merged."""
    runs: list[tuple[datetime, datetime]] = []
    for lo, hi in spans:
        if runs and runs[-1][1] == lo:
            runs[-1] = (runs[-1][0], hi)
        else:
            runs.append((lo, hi))
    return runs


def _not_closed(size: str, span: tuple[datetime, datetime], reached: dict[str, datetime],
                wanted: list[str] | None) -> list[dict[str, Any]]:
    """Where, inside the coarser tiles' ``span``, ``size`` windows of each scope must be
    read: after the last window read of it, or all of it for a scope none was read of."""
    lo, hi = span
    after: dict[datetime, list[str]] = {}
    for scope, scope_end in reached.items():
        if max(lo, scope_end) < hi:
            after.setdefault(max(lo, scope_end), []).append(scope)
    clauses = [_of(size, since, hi, sorted(group)) for since, group in sorted(after.items())]
    if wanted is None:
        clauses.append({**_of(size, lo, hi, None), "scope": {"$nin": sorted(reached)}})
    elif unread := [scope for scope in wanted if scope not in reached]:
        clauses.append(_of(size, lo, hi, unread))
    return clauses
