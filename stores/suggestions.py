"""Search suggestions: a card per product, a list per name prefix, a counter per category prefix.

What a query may start is one of a product's name *phrases* (the name from one of its
words on, normalised: casefolded, accents stripped), so "lap" finds "Gaming Laptop" by
its second word and "gaming lap" by its first. Suggestions answer on every keystroke,
so a one-word query is one point read of its prefix's list of most popular products
(``stores.suggestion_tops``), whatever the prefix's width; every word's prefixes of 1
to ``MAX_PREFIX`` characters have a list. A several-word query is narrow (two words in
a row), so it reads the cards under it by their index of every phrase's prefixes (up
to ``MAX_PREFIX`` characters; a longer query keeps those one of whose phrases starts
with the whole query).

A product's card (``p|<product id>``: its name, phrases, prefixes and popularity) is
the source its lists are kept from. The catalog agent re-indexes a product from its
stored read model after every change (``index``), so a redelivered or older command
only rewrites the current state; a change that moves no prefix (a new price) costs one
point read. A card carries the prefixes whose lists are still to be moved
(``pending``) until they all are, so a crash between the two is finished on
redelivery.

A category's popularity is the number of active products in it: a counter
per (prefix, category) document, moved by one ``$inc`` when a product joins or
leaves, whichever agent partition writes. Which category a product counts in is
its membership document, ``m|<product id>``; the documents hold no member ids, so
none grows with its category. Categories are few per prefix, so they are looked up
by an indexed range read of their first word's prefix.

A product's popularity is ``ORDER_WEIGHT`` per order plus one per view, summed
over the marketplace's closed hour windows of the analytics agent, so it lags
by up to an hour (``record_popularity``: each hour's figure is set, never added,
so a re-emitted window counts once).
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from stores.applied import push_applied
from stores.products import Product, category_key
from stores.suggestion_tops import TOP, TOPS, TopLists

COLLECTION = "suggestions"
POPULARITY = "product_popularity"
INDEXES = {
    COLLECTION: [
        IndexModel([("prefix", ASCENDING), ("kind", ASCENDING), ("popularity", DESCENDING),
                    ("_id", ASCENDING)], name="suggest_prefix"),
        # A product's card by any prefix of its phrases: a list's refill, a long query.
        IndexModel([("prefixes", ASCENDING)], name="suggest_card_prefixes"),
    ],
}
# The per-(prefix, product) rows the cards replaced were found by product.
RETIRED_INDEXES = {COLLECTION: ["suggest_product"]}
# Prefixes up to this length have a list; a longer query is looked up by its first
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
    """The prefixes of every word of ``text``: where a category is counted."""
    out: set[str] = set()
    for word in normalised_words(text):
        out.update(word[:size] for size in range(1, min(len(word), MAX_PREFIX) + 1))
    return sorted(out)


def phrase_prefixes(text: str) -> list[str]:
    """The prefixes of every phrase of ``text`` a query may be (none ends in a space)."""
    out: set[str] = set()
    for phrase in phrases(text):
        out.update(phrase[:size] for size in range(1, min(len(phrase), MAX_PREFIX) + 1)
                   if phrase[size - 1] != " ")
    return sorted(out)


def _listed(card_prefixes: Iterable[str]) -> set[str]:
    # One word's prefixes have a list: a query of one word is as wide as a catalog's
    # common words. A several-word one is narrow (two words in a row), and a list per
    # two-word prefix would be written for nearly every product (measured: docs/
    # performance.md), so those read the cards.
    return {p for p in card_prefixes if " " not in p}


def _card_id(product_id: str) -> str:
    return f"p|{product_id}"


def _category_id(prefix: str, key: str) -> str:
    return f"c|{prefix}|{key}"


def _membership_id(product_id: str) -> str:
    return f"m|{product_id}"


class SuggestionRepository:
    """The suggestion index and the product popularity it ranks by."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._index = db[COLLECTION]
        self._tops = TopLists(db[TOPS], self._index)
        self._popularity = db[POPULARITY]
        # product -> the (hour, score) last recorded by this process: a window re-emitted
        # every second writes only the products whose figures changed. One entry per
        # product, not per (product, hour), so it does not grow for as long as the worker
        # runs; a revised older hour is written again, harmless since hours are set.
        self._recorded: dict[str, tuple[int, int]] = {}

    async def index(self, product: Product) -> None:
        """Make the index hold ``product`` as it is now (nothing, once archived)."""
        pid = product.product_id
        card_id = _card_id(pid)
        active = product.status == "active"
        wanted = ({"text": product.name, "phrases": phrases(product.name),
                   "prefixes": phrase_prefixes(product.name)} if active else None)
        held = await self._index.find_one({"_id": card_id})
        if held is not None or wanted is not None:
            await self._recard(card_id, pid, held, wanted)
        await self._categorise(product, product.category if active else None)

    async def _recard(self, card_id: str, pid: str, held: dict[str, Any] | None,
                      wanted: dict[str, Any] | None) -> None:
        """Write the card ``wanted`` (None: none), then move the lists it left or joined."""
        pending = set(held.get("pending", ())) if held is not None else set()
        if (held is not None and wanted is not None and not pending
                and all(held.get(k) == v for k, v in wanted.items())):
            return
        # Every prefix of the card before and after, kept on the card until each list is
        # moved: a crash in between leaves them to the redelivery.
        touched = sorted(pending | _listed(held["prefixes"] if held else ()) |
                         _listed(wanted["prefixes"] if wanted else ()))
        if wanted is not None:
            made = await self._index.update_one(
                {"_id": card_id},
                {"$set": {**wanted, "pending": touched},
                 "$setOnInsert": {"kind": "product", "productId": pid, "popularity": 0}},
                upsert=True)
            # The score read once the card exists: record_popularity, which sets the card's,
            # found none if it scored the product before.
            if made.upserted_id is not None and (score := await self._score(pid)):
                await self._index.update_one({"_id": card_id}, {"$set": {"popularity": score}})
        else:
            await self._index.update_one(
                {"_id": card_id}, {"$set": {"prefixes": [], "pending": touched}})
        await self._tops.retop(card_id, pid, touched)
        if wanted is not None:
            await self._index.update_one({"_id": card_id}, {"$unset": {"pending": ""}})
        else:
            await self._index.delete_one({"_id": card_id})

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
            # The card first, then its lists (stores.suggestion_tops: why that order).
            card_id = _card_id(product_id)
            before = await self._index.find_one_and_update(
                {"_id": card_id}, {"$set": {"popularity": total}},
                {"popularity": 1, "prefixes": 1})
            if before is not None and before.get("popularity") != total:
                await self._tops.retop(card_id, product_id,
                                       _listed(before.get("prefixes", ())))
            self._recorded[product_id] = (hour_ms, score)
            changed += 1
        return changed

    async def suggest(self, q: str, *, limit: int) -> list[Suggestion]:
        """Categories, then products, whose names start ``q`` (a word of it), most popular first.

        Categories take at most a quarter of ``limit`` (rounded down: none below 4), so
        products, what people mostly look for, fill the rest (at most ``TOP``).
        """
        words = normalised_words(q)
        if not words:
            return []
        phrase = " ".join(words)
        categories = await self._categories(words[0][:MAX_PREFIX], phrase,
                                            len(words) == 1 and len(words[0]) <= MAX_PREFIX,
                                            limit=limit // 4)
        room = min(limit - len(categories), TOP)
        if room <= 0:
            return categories
        if len(phrase) <= MAX_PREFIX and len(words) == 1:
            top = await self._tops.read(phrase)
            products = [Suggestion(e["text"], "product", e["productId"])
                        for e in top.entries[:room]]
        else:
            products = await self._long(phrase, limit=room)
        return [*categories, *products]

    async def _long(self, phrase: str, *, limit: int) -> list[Suggestion]:
        """Products one of whose phrases starts ``phrase``: several words, or a long one."""
        cursor = (
            self._index.find({"prefixes": phrase[:MAX_PREFIX].rstrip()},
                             {"text": 1, "productId": 1, "phrases": 1})
            .sort([("popularity", DESCENDING), ("_id", ASCENDING)])
            .limit(MAX_SCAN)
        )
        found: list[Suggestion] = []
        async for doc in cursor:
            if any(p.startswith(phrase) for p in doc["phrases"]):
                found.append(Suggestion(str(doc["text"]), "product", doc["productId"]))
                if len(found) == limit:
                    break
        return found

    async def _categories(
        self, key: str, phrase: str, exact: bool, *, limit: int
    ) -> list[Suggestion]:
        if limit <= 0:
            return []
        # popularity > 0: a category whose products are all archived is not suggested.
        cursor = (
            self._index.find({"prefix": key, "kind": "category", "popularity": {"$gt": 0}},
                             {"text": 1})
            .sort([("popularity", DESCENDING), ("_id", ASCENDING)])
            .limit(limit if exact else MAX_SCAN)
        )
        found: list[Suggestion] = []
        async for doc in cursor:
            text = str(doc["text"])
            # A category's phrases are computed here, not stored on each of its prefixes.
            if exact or any(p.startswith(phrase) for p in phrases(text)):
                found.append(Suggestion(text, "category"))
                if len(found) == limit:
                    break
        return found
