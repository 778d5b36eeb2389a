"""Product search without ``$text``: tokens computed at projection time, scored by aggregation.

The dev/test server (secantusdb) has no text indexes, so the products
projection stores normalised tokens (casefolded, accents stripped, stop words
dropped) plus their edge n-grams per field, and the union in one multikey
indexed field. A query matches when *every* query token is in that union
(``$all``); its score is the weighted count of query tokens per field
(``$size`` of ``$setIntersection``), which secantusdb evaluates like MongoDB.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

MIN_WORD = 2
# Edge n-grams from 3 characters: shorter prefixes match nearly everything.
MIN_PREFIX = 3
MAX_PREFIX = 10
WEIGHTS = {"name": 3, "category": 2, "description": 1}
ALL_FIELD = "terms.all"
STOP_WORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "in", "into", "is", "it",
    "of", "on", "or", "the", "this", "to", "with",
})
_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> list[str]:
    """Normalised words of ``text``: casefold, NFKD without accents, alphanumeric runs."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return [w for w in _WORD.findall(plain) if len(w) >= MIN_WORD and w not in STOP_WORDS]


def index_terms(text: str) -> list[str]:
    """Every term a document field is findable by: its words and their prefixes."""
    terms: set[str] = set()
    for word in words(text):
        terms.add(word)
        terms.update(word[:size] for size in range(MIN_PREFIX, min(len(word), MAX_PREFIX + 1)))
    return sorted(terms)


def query_terms(q: str) -> list[str]:
    """The terms a query must all match, in query order without repeats.

    Words longer than the longest indexed prefix are cut to it, so a longer
    prefix (or a plural) still finds the word it starts.
    """
    out: list[str] = []
    for word in words(q):
        term = word[:MAX_PREFIX]
        if term not in out:
            out.append(term)
    return out


def search_fields(*, name: str, category: str, description: str) -> dict[str, list[str]]:
    """The ``terms`` sub-document a product projection stores."""
    fields = {
        "name": index_terms(name),
        "category": index_terms(category),
        "description": index_terms(description),
    }
    union = sorted({term for terms in fields.values() for term in terms})
    return {**fields, "all": union}


def score_expression(terms: list[str]) -> dict[str, Any]:
    """An aggregation expression: the weighted number of ``terms`` found per field."""
    return {
        "$add": [
            {"$multiply": [weight, {"$size": {"$setIntersection": [f"$terms.{field}", terms]}}]}
            for field, weight in WEIGHTS.items()
        ]
    }
