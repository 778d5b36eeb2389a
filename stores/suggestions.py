"""The search-suggestion index: one document per (prefix, product) and per (prefix, category).

Suggestions answer on every keystroke, so a lookup is one equality on an indexed
prefix, already sorted by popularity: ``{prefix, kind}`` then ``popularity``
descending. Each word of a product's name (normalised: casefolded, accents
stripped) contributes its prefixes of 1 to ``MAX_PREFIX`` characters, so "lap"
finds "Gaming Laptop" by its second word; longer and several-word queries look
up their first word's prefix and keep the products one of whose name *phrases*
(the name from one of its words on) starts with the whole query.

The catalog agent re-indexes a product from its stored read model after every
change (``index``), so a redelivered or older command only rewrites the current
state. A category's popularity is the number of active products in it: a counter
per (prefix, category) document, moved by one ``$inc`` when a product joins or
leaves, whichever agent partition writes. Which category a product counts in is
its membership document, ``m|<product id>``; the documents hold no member ids, so
none grows with its category.

A product's popularity is ``ORDER_WEIGHT`` per order plus one per view, summed
over the marketplace's closed hour windows of the analytics agent, so it lags
by up to an hour (``record_popularity``: each hour's figure is set, never added,
so a re-emitted window counts once).
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import unicodedata
from collections.abc import Mapping
from typing import Any, Literal

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from stores.applied import push_applied
from stores.products import Product, category_key

COLLECTION = "suggestions"
POPULARITY = "product_popularity"
INDEXES = {
    COLLECTION: [
        IndexModel([("prefix", ASCENDING), ("kind", ASCENDING), ("popularity", DESCENDING),
                    ("_id", ASCENDING)], name="suggest_prefix"),
        IndexModel([("productId", ASCENDING)], name="suggest_product"),
    ],
}
# Prefixes up to this length are indexed; a longer query is looked up by its first
# MAX_PREFIX characters and filtered (few products share a 12-character prefix).
MAX_PREFIX = 12
ORDER_WEIGHT = 10
# Popularity counts the last 30 days of a product's activity.
HORIZON_MS = 30 * 24 * 60 * 60 * 1000
# A filtered lookup reads at most this many candidates, so a query that matches a prefix
# but few phrases costs a bounded scan.
MAX_SCAN = 500
Kind = Literal["product", "category"]
_WORD = re.compile(r"[^\W_]+")


@dataclasses.dataclass(frozen=True, slots=True)
class Suggestion:
    """One suggestion as the API shows it."""

    text: str
    kind: Kind
    product_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The contract's suggestion object."""
        out: dict[str, Any] = {"text": self.text, "kind": self.kind}
        if self.product_id is not None:
            out["productId"] = self.product_id
        return out


def normalised_words(text: str) -> list[str]:
    """Casefolded words of ``text`` without accents: every word counts, however short."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _WORD.findall(plain)


def phrases(text: str) -> list[str]:
    """``text`` normalised from each of its words on: what a query may start."""
    found = normalised_words(text)
    return [" ".join(found[i:]) for i in range(len(found))]


def prefixes(text: str) -> list[str]:
    """The indexed prefixes of every word of ``text``."""
    out: set[str] = set()
    for word in normalised_words(text):
        out.update(word[:size] for size in range(1, min(len(word), MAX_PREFIX) + 1))
    return sorted(out)


def _product_id(prefix: str, product_id: str) -> str:
    return f"p|{prefix}|{product_id}"


def _category_id(prefix: str, key: str) -> str:
    return f"c|{prefix}|{key}"


def _membership_id(product_id: str) -> str:
    # No productId field: index() finds a product's prefix documents by it.
    return f"m|{product_id}"


class SuggestionRepository:
    """The suggestion index and the product popularity it ranks by."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._index = db[COLLECTION]
        self._popularity = db[POPULARITY]
        # product -> the (hour, score) last recorded by this process: a window re-emitted
        # every second writes only the products whose figures changed. One entry per
        # product, not per (product, hour), so it does not grow for as long as the worker
        # runs; a revised older hour is written again, harmless since hours are set.
        self._recorded: dict[str, tuple[int, int]] = {}

    async def index(self, product: Product) -> None:
        """Make the index hold ``product`` as it is now (nothing, once archived)."""
        pid = product.product_id
        active = product.status == "active"
        names = prefixes(product.name) if active else []
        wanted = {_product_id(p, pid) for p in names}
        held = {doc["_id"] async for doc in self._index.find({"productId": pid}, {"_id": 1})}
        if stale := held - wanted:
            await self._index.delete_many({"_id": {"$in": sorted(stale)}})
        shown = {"text": product.name, "phrases": phrases(product.name)}
        if held & wanted:
            await self._index.update_many({"productId": pid}, {"$set": shown})
        if missing := wanted - held:
            score = await self._score(pid)
            docs = [
                {"_id": _product_id(p, pid), "prefix": p, "kind": "product", "productId": pid,
                 "popularity": score, **shown}
                for p in names if _product_id(p, pid) in missing
            ]
            # A concurrent redelivery may have inserted some: the others still go in.
            with contextlib.suppress(BulkWriteError):
                await self._index.insert_many(docs, ordered=False)
        await self._categorise(product, product.category if active else None)

    async def _categorise(self, product: Product, category: str | None) -> None:
        """Count ``product`` in ``category`` (None: in none) instead of where it counted."""
        membership = _membership_id(product.product_id)
        held = await self._index.find_one({"_id": membership}, {"category": 1})
        before: str | None = None if held is None else held.get("category")
        if (category_key(before) if before else None) == (
            category_key(category) if category else None
        ):
            return
        # The membership is written last: a crash before it repeats the whole move on
        # redelivery, and each counter's guard (the move's id among its newest applied,
        # stores.applied) lets only the ones not yet moved move. Another partition's moves
        # share a category's window: only a category that more than EVENT_WINDOW products
        # joined or left between a crash and its redelivery could count this one twice.
        move = f"{product.product_id}@{product.version}"
        if before:
            leaving = [_category_id(p, category_key(before)) for p in prefixes(before)]
            await self._index.update_many(
                {"_id": {"$in": leaving}, "events": {"$ne": move}},
                {"$inc": {"popularity": -1}, "$push": push_applied(move)},
            )
        if category:
            key = category_key(category)
            for doc_id in (_category_id(p, key) for p in prefixes(category)):
                await self._join(doc_id, move, text=category, key=key)
        await self._index.replace_one(
            {"_id": membership}, {"kind": "membership", "category": category}, upsert=True
        )

    async def _join(self, doc_id: str, move: str, *, text: str, key: str) -> None:
        query = {"_id": doc_id, "events": {"$ne": move}}
        update = {"$inc": {"popularity": 1}, "$push": push_applied(move),
                  "$setOnInsert": {"prefix": doc_id.split("|")[1], "kind": "category",
                                   "text": text, "categoryKey": key}}
        # A duplicate key is either another product's concurrent first insert (then the
        # document exists and the second try counts this one) or the move already counted.
        for _ in range(2):
            try:
                await self._index.update_one(query, update, upsert=True)
            except DuplicateKeyError:
                continue
            return

    async def _score(self, product_id: str) -> int:
        doc = await self._popularity.find_one({"_id": product_id}, {"score": 1})
        return 0 if doc is None else int(doc.get("score", 0))

    async def record_popularity(
        self, hour_ms: int, products: Mapping[str, Mapping[str, Any]]
    ) -> int:
        """Set each product's score for one marketplace hour window; returns how many changed.

        ``products`` are the window's per-product figures (``orders``, ``views``). A
        product's popularity is the sum over its hours in the ``HORIZON_MS`` up to its
        latest, so its document stays bounded. The marketplace's windows are emitted by
        one agent partition, so the read-sum-write of a total is never raced.
        """
        changed = 0
        for product_id, figures in products.items():
            score = ORDER_WEIGHT * int(figures.get("orders", 0)) + int(figures.get("views", 0))
            if self._recorded.get(product_id) == (hour_ms, score):
                continue
            doc = await self._popularity.find_one({"_id": product_id}) or {"hours": {}}
            hours: dict[str, int] = {**doc.get("hours", {}), str(hour_ms): score}
            newest = max(int(h) for h in hours)
            hours = {h: v for h, v in hours.items() if int(h) > newest - HORIZON_MS}
            total = sum(hours.values())
            await self._popularity.replace_one(
                {"_id": product_id}, {"hours": hours, "score": total}, upsert=True
            )
            await self._index.update_many(
                {"productId": product_id}, {"$set": {"popularity": total}}
            )
            self._recorded[product_id] = (hour_ms, score)
            changed += 1
        return changed

    async def suggest(self, q: str, *, limit: int) -> list[Suggestion]:
        """Categories, then products, whose names start ``q`` (a word of it), most popular first.

        Categories take at most a quarter of ``limit`` (rounded down: none below 4), so
        products, what people mostly look for, fill the rest.
        """
        words = normalised_words(q)
        if not words:
            return []
        phrase = " ".join(words)
        key = words[0][:MAX_PREFIX]
        exact = len(words) == 1 and len(words[0]) <= MAX_PREFIX
        categories = await self._lookup(key, "category", phrase, exact,
                                        limit=limit // 4)
        products = await self._lookup(key, "product", phrase, exact,
                                      limit=limit - len(categories))
        return [*categories, *products]

    async def _lookup(
        self, key: str, kind: Kind, phrase: str, exact: bool, *, limit: int
    ) -> list[Suggestion]:
        if limit <= 0:
            return []
        projection = {"text": 1, "productId": 1, "phrases": 1}
        query: dict[str, Any] = {"prefix": key, "kind": kind}
        if kind == "category":
            query["popularity"] = {"$gt": 0}  # a category whose products are all archived
        cursor = (
            self._index.find(query, projection)
            .sort([("popularity", DESCENDING), ("_id", ASCENDING)])
            .limit(limit if exact else MAX_SCAN)
        )
        found: list[Suggestion] = []
        async for doc in cursor:
            text = str(doc["text"])
            # A category's phrases are computed here, not stored on each of its prefixes.
            said = doc.get("phrases") if kind == "product" else phrases(text)
            if exact or any(p.startswith(phrase) for p in said or ()):
                found.append(Suggestion(text, kind, doc.get("productId")))
                if len(found) == limit:
                    break
        return found
