"""Analytics read models: closed windows (reports) and each scope's live snapshot.

Written only by the analytics agent: a closed window is upserted under its key, a
revision never replaced by an older one; the snapshot of a scope is replaced whole.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import Any

from pymongo import IndexModel
from pymongo.asynchronous.database import AsyncDatabase

WINDOWS = "analytics_windows"
SNAPSHOTS = "analytics_snapshots"
INDEXES = {
    WINDOWS: [
        IndexModel([("size", 1), ("scope", 1), ("start", 1)], name="by_size_scope_start"),
    ],
}


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


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

    async def windows(
        self, *, size: str, start: datetime, end: datetime, scopes: Iterable[str] | None = None,
        sellers_only: bool = False,
    ) -> AsyncIterator[dict[str, Any]]:
        """Closed windows of ``size`` starting in [start, end), of the given scopes."""
        query: dict[str, Any] = {"size": size, "start": {"$gte": start, "$lt": end}}
        if scopes is not None:
            query["scope"] = {"$in": sorted(set(scopes))}
        async for doc in self._windows.find(query).sort("start", 1):
            # Filtered here: the marketplace's windows are a few among many sellers'.
            if not sellers_only or doc.get("sellerId") is not None:
                yield doc

    async def put_snapshot(self, scope: str, snapshot: dict[str, Any]) -> None:
        """Replace the live snapshot of ``scope``."""
        await self._snapshots.replace_one({"_id": scope}, {"snapshot": snapshot}, upsert=True)

    async def snapshot(self, scope: str) -> dict[str, Any] | None:
        """The last snapshot of ``scope``, if one was built."""
        doc = await self._snapshots.find_one({"_id": scope})
        return None if doc is None else dict(doc["snapshot"])
