"""The most popular products of each name prefix: one document per prefix, read by ``_id``.

A suggestion answers on every keystroke, and the embedded server reads every document
an index range matches before it sorts and limits (``q=l`` on 10,000 products: 542 ms
p50 as a range of per-prefix rows). So each prefix keeps its top ``TOP`` products,
ranked as they are shown (popularity descending, then product id), in a document of
its own, and an uncached suggestion is one point read whatever the prefix's width.

Invariant: a prefix's document holds exactly its ``TOP`` best products, or all of them
when it has no more (``complete``); no document means none. It is then a function of
the product cards alone, so a rebuild writes the very documents the live agents wrote.
A change of one product moves only its own entry (``placed``); only when a product
leaves an incomplete list (archived, renamed, or less popular than the next one
outside it, unknown here) is the list read again from the cards (``refilled``), a read
as wide as the prefix, on the writer's side.

Writers are the catalog agent (names) and the analytics agent (popularity), on
different partitions; each writes the product's card first, then every list of it
(``TopLists.retop``). Each attempt reads the lists, *then* the card, and replaces a
list only if it is still what was read (its whole content is the guard, so a list
holds no revision counter a replay would count differently); a list another writer
moved meanwhile is tried again with a fresh card. Whichever writer replaces a list
last has read the card after every card write that preceded it, so the lists converge
on the cards however the two interleave, and a redelivered change rewrites nothing.
Hazard: a list moved away and back to the very content read, by two changes of the same
product within one attempt (a rename and its undoing), lets a stale attempt through.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

TOPS = "suggestion_tops"
# The most a suggestion may show (the route's limit).
TOP = 20
Entry = dict[str, Any]  # {"productId", "text", "popularity"}
Collection = AsyncCollection[dict[str, Any]]


def _rank(entry: Mapping[str, Any]) -> tuple[int, str]:
    return -int(entry["popularity"]), str(entry["productId"])


@dataclasses.dataclass(frozen=True, slots=True)
class Top:
    """One prefix's list: its best products, best first; ``complete``: all of them."""

    entries: tuple[Entry, ...] = ()
    complete: bool = True

    @classmethod
    def of(cls, doc: Mapping[str, Any] | None) -> Top:
        """The list a stored document holds (None: the empty, complete list)."""
        if doc is None:
            return cls()
        return cls(tuple(doc["top"]), bool(doc["complete"]))

    def doc(self, prefix: str) -> dict[str, Any]:
        """The stored document; the guard of a replace matches these very fields."""
        return {"_id": prefix, "top": list(self.entries), "complete": self.complete}


def refilled(cards: Iterable[Entry]) -> Top:
    """The list of every product under a prefix, as read from their cards."""
    ranked = sorted(cards, key=_rank)
    return Top(tuple(ranked[:TOP]), len(ranked) <= TOP)


def placed(held: Top, product_id: str, entry: Entry | None) -> Top | None:
    """``held`` with ``product_id`` as ``entry`` (None: not under this prefix any more).

    None when only the cards can tell: the product was among an incomplete list's best
    and now ranks below its last, so the next best may be outside the list.
    """
    rest = [e for e in held.entries if e["productId"] != product_id]
    if held.complete:
        ranked = sorted([*rest, entry] if entry is not None else rest, key=_rank)
        return Top(tuple(ranked[:TOP]), len(ranked) <= TOP)
    outside = len(rest) == len(held.entries)
    # Every product outside ranks below the list's last entry (it may be this one).
    if entry is None or _rank(entry) > _rank(held.entries[-1]):
        # Outside, it stays out; inside, it fell below the last: the next best is unknown.
        return held if outside else None
    return Top(tuple(sorted([*rest, entry], key=_rank)[:TOP]), False)


def card_entry(card: Mapping[str, Any] | None, prefix: str) -> Entry | None:
    """What a product's card puts in ``prefix``'s list (None: nothing)."""
    if card is None or prefix not in card.get("prefixes", ()):
        return None
    return {"productId": card["productId"], "text": card["text"],
            "popularity": int(card.get("popularity", 0))}


class TopLists:
    """The per-prefix lists, kept from the product cards of ``cards``."""

    def __init__(self, tops: Collection, cards: Collection) -> None:
        self._tops = tops
        self._cards = cards

    async def read(self, prefix: str) -> Top:
        """``prefix``'s list: one point read."""
        return Top.of(await self._tops.find_one({"_id": prefix}))

    async def retop(self, card_id: str, product_id: str, prefixes: Iterable[str]) -> None:
        """Make every list of ``prefixes`` agree with the product's card as it is now."""
        pending = set(prefixes)
        while pending:
            held = {d["_id"]: d async for d in self._tops.find({"_id": {"$in": sorted(pending)}})}
            # Read after the lists: see the module's docstring for why the order matters.
            card = await self._cards.find_one({"_id": card_id})
            for prefix in sorted(pending):
                doc = held.get(prefix)
                top = Top.of(doc)
                new = placed(top, product_id, card_entry(card, prefix))
                if new is None:
                    new = await self._refill(prefix)
                if new == top or await self._swap(prefix, doc, new):
                    pending.discard(prefix)

    async def _refill(self, prefix: str) -> Top:
        cursor = self._cards.find({"prefixes": prefix},
                                  {"productId": 1, "text": 1, "popularity": 1, "prefixes": 1})
        return refilled([e async for c in cursor if (e := card_entry(c, prefix)) is not None])

    async def _swap(self, prefix: str, doc: Mapping[str, Any] | None, new: Top) -> bool:
        """Replace ``doc`` (None: absent) by ``new``; False when another writer moved it."""
        if doc is None:
            try:
                await self._tops.insert_one(new.doc(prefix))
            except DuplicateKeyError:
                return False
            return True
        guard = {"_id": prefix, "top": doc["top"], "complete": doc["complete"]}
        if not new.entries:
            return (await self._tops.delete_one(guard)).deleted_count == 1
        return (await self._tops.replace_one(guard, new.doc(prefix))).matched_count == 1
