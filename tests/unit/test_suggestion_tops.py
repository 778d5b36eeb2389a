"""A prefix's list of its most popular products: how one product's change moves it."""

from __future__ import annotations

from stores.suggestion_tops import TOP, Entry, Top, placed, refilled
from stores.suggestions import phrase_prefixes


def entry(n: int, popularity: int) -> Entry:
    return {"productId": f"p{n:03}", "text": f"Item {n}", "popularity": popularity}


def full() -> Top:
    """An incomplete list: products 0 to TOP-1 (popularity 100 down), more outside it."""
    return Top(tuple(entry(n, 100 - n) for n in range(TOP)), complete=False)


def test_every_phrase_prefix_has_a_list_none_ending_in_a_space() -> None:
    assert phrase_prefixes("Go Pro") == ["g", "go", "go p", "go pr", "go pro", "p", "pr", "pro"]
    assert max(map(len, phrase_prefixes("Gaming Laptop Pro"))) == 12


def test_a_complete_list_takes_every_product_until_it_overflows() -> None:
    top = Top()
    for n in range(TOP):
        moved = placed(top, f"p{n:03}", entry(n, n))
        assert moved is not None
        top = moved
    assert top.complete
    assert [e["popularity"] for e in top.entries] == list(range(TOP - 1, -1, -1))
    assert placed(top, "p005", None) == Top(tuple(e for e in top.entries
                                                 if e["productId"] != "p005"))
    overflown = placed(top, "p999", entry(999, -1))
    assert overflown == Top(top.entries, complete=False)  # the least popular left out


def test_ties_rank_by_product_id() -> None:
    assert refilled([entry(2, 5), entry(1, 5), entry(3, 6)]).entries == (
        entry(3, 6), entry(1, 5), entry(2, 5))


def test_an_incomplete_list_moves_by_its_last_entry() -> None:
    top = full()
    assert placed(top, "p500", entry(500, 50)) is top  # below the last: stays outside
    assert placed(top, "p500", None) is top
    entered = placed(top, "p500", entry(500, 95))
    assert entered is not None
    assert not entered.complete
    assert [e["productId"] for e in entered.entries][4:7] == ["p004", "p005", "p500"]
    assert entered.entries[-1]["productId"] == f"p{TOP - 2:03}"  # the last one left out
    # Inside, still above the rest: moved; below the rest or gone: only a refill knows.
    moved = placed(top, "p003", entry(3, 200))
    assert moved is not None
    assert moved.entries[0] == entry(3, 200)
    assert placed(top, "p003", entry(3, 1)) is None
    assert placed(top, "p003", None) is None
    last = f"p{TOP - 1:03}"
    assert placed(top, last, entry(TOP - 1, 0)) is None
    # The last one more popular, still below the one before it: the rest rank below it.
    raised = placed(top, last, entry(TOP - 1, 100 - TOP + 2))
    assert raised is not None
    assert raised.entries[-1] == entry(TOP - 1, 100 - TOP + 2)
    renamed = placed(top, last, entry(TOP - 1, 100 - TOP + 1) | {"text": "Renamed"})
    assert renamed is not None
    assert renamed.entries[-1]["text"] == "Renamed"
