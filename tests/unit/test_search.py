"""Search tokens and product listing plans (pure functions, no database)."""

from __future__ import annotations

from datetime import UTC, datetime

from stores.product_listing import Listing, after_position, pipeline
from stores.search import index_terms, query_terms, search_fields, words


def test_words_are_casefolded_accent_free_and_drop_stop_words() -> None:
    assert words("Crème Brûlée for THE Straße, x 4K") == ["creme", "brulee", "strasse", "4k"]


def test_index_terms_add_edge_ngrams_from_three_to_ten_characters() -> None:
    terms = index_terms("Headphones")
    assert {"hea", "head", "headphone", "headphones"} <= set(terms)
    assert "he" not in terms
    long = index_terms("superconductivity")
    assert "superconductivity" in long
    assert "supercondu" in long
    assert "superconduc" not in long


def test_query_terms_keep_order_drop_repeats_and_cut_long_words() -> None:
    assert query_terms("Head the HEAD Café") == ["head", "cafe"]
    # A prefix longer than the indexed ones still finds the word it starts.
    assert query_terms("superconductive")[0] in index_terms("superconductivity")


def test_search_fields_keep_per_field_terms_and_their_union() -> None:
    fields = search_fields(name="Desk Lamp", category="Lighting", description="warm")
    assert "lamp" in fields["name"]
    assert "lig" in fields["category"]
    assert set(fields["all"]) == set(fields["name"]) | set(fields["category"]) | {"war", "warm"}


def test_keyset_position_follows_every_sort_key_then_id() -> None:
    listing = Listing(sort=(("price", 1), ("createdAt", -1)))
    moment = datetime(2024, 1, 1, tzinfo=UTC)
    position = (listing.signature, 500, moment, "p1")
    assert listing.valid_position(position)
    after = after_position(Listing(sort=listing.sort, after=position))
    assert after == {
        "$or": [
            {"priceMicros": {"$gt": 500}},
            {"priceMicros": 500, "createdAt": {"$lt": moment}},
            {"priceMicros": 500, "createdAt": moment, "_id": {"$lt": "p1"}},
        ]
    }


def test_a_cursor_of_another_sort_or_query_is_not_a_position() -> None:
    by_price = Listing(sort=(("price", 1),))
    by_name = Listing(sort=(("name", 1),))
    position = (by_price.signature, 500, "p1")
    assert by_price.valid_position(position)
    assert not by_name.valid_position(position)
    assert not Listing(sort=by_price.sort, terms=("lamp",)).valid_position(position)
    assert not by_price.valid_position((by_price.signature, "500", "p1"))


def test_search_ranks_by_score_first() -> None:
    stages = pipeline(Listing(terms=("lamp",)))
    assert stages[0]["$match"]["terms.all"] == {"$all": ["lamp"]}
    assert "_score" in stages[1]["$addFields"]
    assert list(stages[2]["$sort"]) == ["_score", "createdAt", "_id"]
