"""Each worker run's client id, kept in its data dir for the next run (streams.membership)."""

from __future__ import annotations

from pathlib import Path

from streams.membership import CLIENT_ID_FILE, next_client_id


def test_each_run_gets_a_new_id_and_learns_the_previous_one(tmp_path: Path) -> None:
    first, before_first = next_client_id(tmp_path / "data", "mercato")
    assert before_first is None
    assert first.startswith("mercato-worker-")
    second, previous = next_client_id(tmp_path / "data", "mercato")
    assert previous == first
    assert second != first
    assert (tmp_path / "data" / CLIENT_ID_FILE).read_text().strip() == second


def test_an_empty_record_means_no_previous_run(tmp_path: Path) -> None:
    (tmp_path / CLIENT_ID_FILE).write_text("\n")
    _, previous = next_client_id(tmp_path, "mercato")
    assert previous is None
