"""What the suggestion index stores for a name: the prefixes of every word, and its phrases."""

from __future__ import annotations

from stores.suggestions import MAX_PREFIX, normalised_words, phrases, prefixes


def test_every_word_however_short_counts_casefolded_without_accents() -> None:
    assert normalised_words("Crème  brûlée — 2 Tôles_x") == ["creme", "brulee", "2", "toles", "x"]


def test_prefixes_of_each_word_are_indexed_up_to_the_bound() -> None:
    assert prefixes("Go Pro") == ["g", "go", "p", "pr", "pro"]
    long = prefixes("Supercalifragilistic")
    assert max(map(len, long)) == MAX_PREFIX
    assert len(long) == MAX_PREFIX


def test_phrases_start_at_each_word() -> None:
    assert phrases("Gaming Laptop Pro") == ["gaming laptop pro", "laptop pro", "pro"]
    assert phrases("!!!") == []
