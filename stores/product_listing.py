"""Product listings: filters, multi-key sorts and keyset positions as one aggregation.

Keyset (seek) pagination: a page continues strictly after the sort position of
the previous page's last row, so rows inserted meanwhile never shift or repeat
rows across pages. ``_id`` is always the final key, which makes every position
unique. With a search query the score comes first and the requested sort
breaks its ties.
"""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import datetime
from typing import Any

from stores.search import ALL_FIELD, score_expression

SCORE = "_score"
# API sort name -> read-model field. Names sort case-insensitively via nameKey.
SORT_FIELDS = {
    "createdAt": "createdAt",
    "price": "priceMicros",
    "name": "nameKey",
    "rating": "rating.average",
}
DEFAULT_SORT = (("createdAt", -1),)
# What a cursor value must be for each field; anything else was not issued by us.
_VALUE_TYPES: dict[str, tuple[type, ...]] = {
    "createdAt": (datetime,),
    "priceMicros": (int,),
    "nameKey": (str,),
    "rating.average": (int, float),
    SCORE: (int,),
    "_id": (str,),
}


@dataclasses.dataclass(frozen=True, slots=True)
class Listing:
    """One page request over products: filters, sort, search terms and position."""

    sort: tuple[tuple[str, int], ...] = DEFAULT_SORT
    terms: tuple[str, ...] = ()
    status: str | None = "active"
    category_key: str | None = None
    seller_id: str | None = None
    min_micros: int | None = None
    max_micros: int | None = None
    fetch: int = 21
    after: tuple[Any, ...] | None = None

    @property
    def keys(self) -> tuple[tuple[str, int], ...]:
        """Read-model fields and directions, score first when searching, ``_id`` last."""
        keys = [(SORT_FIELDS[name], direction) for name, direction in self.sort]
        if self.terms:
            keys.insert(0, (SCORE, -1))
        return (*keys, ("_id", keys[-1][1] if keys else 1))

    @property
    def signature(self) -> str:
        """Names the ordering a cursor belongs to: a cursor of another sort or query is invalid."""
        spec = ",".join(f"{'-' if d < 0 else ''}{n}" for n, d in self.sort)
        return hashlib.sha256(f"{spec}|{' '.join(self.terms)}".encode()).hexdigest()[:12]

    def position(self, doc: dict[str, Any]) -> tuple[Any, ...]:
        """The cursor values of ``doc``: the signature, then each key's value."""
        return (self.signature, *(_get(doc, field) for field, _ in self.keys))

    def valid_position(self, values: tuple[Any, ...]) -> bool:
        """Whether ``values`` (decoded from a cursor) is a position of this ordering."""
        keys = self.keys
        if len(values) != len(keys) + 1 or values[0] != self.signature:
            return False
        return all(
            isinstance(value, _VALUE_TYPES[field]) and not isinstance(value, bool)
            for (field, _), value in zip(keys, values[1:], strict=True)
        )


def sort_spec(listing: Listing) -> dict[str, int]:
    """The ``$sort`` document."""
    return dict(listing.keys)


def filters(listing: Listing) -> dict[str, Any]:
    """The ``$match`` of the listing's filters (not its position)."""
    query: dict[str, Any] = {}
    if listing.status is not None:
        query["status"] = listing.status
    else:
        # Stock-only documents (stock arrived before the product, in databases written
        # before stock moved to stores.stock) have no status.
        query["status"] = {"$exists": True}
    if listing.category_key is not None:
        query["categoryKey"] = listing.category_key
    if listing.seller_id is not None:
        query["sellerId"] = listing.seller_id
    price: dict[str, int] = {}
    if listing.min_micros is not None:
        price["$gte"] = listing.min_micros
    if listing.max_micros is not None:
        price["$lte"] = listing.max_micros
    if price:
        query["priceMicros"] = price
    if listing.terms:
        query[ALL_FIELD] = {"$all": list(listing.terms)}
    return query


def after_position(listing: Listing) -> dict[str, Any] | None:
    """Rows strictly after ``listing.after`` in the listing's order."""
    if listing.after is None:
        return None
    keys = listing.keys
    values = listing.after[1:]
    branches = []
    for i, (field, direction) in enumerate(keys):
        branch = {keys[j][0]: values[j] for j in range(i)}
        branch[field] = {"$gt" if direction > 0 else "$lt": values[i]}
        branches.append(branch)
    return {"$or": branches}


def pipeline(listing: Listing) -> list[dict[str, Any]]:
    """The aggregation serving one page."""
    stages: list[dict[str, Any]] = [{"$match": filters(listing)}]
    if listing.terms:
        stages.append({"$addFields": {SCORE: score_expression(list(listing.terms))}})
    position = after_position(listing)
    if position is not None:
        stages.append({"$match": position})
    stages += [
        {"$sort": sort_spec(listing)},
        {"$limit": listing.fetch},
        {"$project": {"terms": 0}},
    ]
    return stages


def _get(doc: dict[str, Any], path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        value = value[part]
    return value
