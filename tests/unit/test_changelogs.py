"""Which runs repair their changelogs, and which reads do (``agents.runtime.changelogs``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from agents.runtime.changelogs import (
    CLEAN_EXIT_FILE,
    TABLES_DIR,
    Repair,
    mark_clean_exit,
    previous_run_crashed,
)


def test_only_tables_left_without_a_clean_exit_need_repair(tmp_path: Path) -> None:
    assert not previous_run_crashed(tmp_path)  # a fresh data dir: nothing to repair
    (tmp_path / TABLES_DIR / "tables").mkdir(parents=True)
    assert previous_run_crashed(tmp_path)  # tables, no mark: killed
    mark_clean_exit(tmp_path)
    assert previous_run_crashed(tmp_path) is False
    # The mark is cleared for the new run: if it is killed, the next one repairs.
    assert not (tmp_path / CLEAN_EXIT_FILE).exists()
    assert previous_run_crashed(tmp_path)


@dataclasses.dataclass(frozen=True)
class Message:
    tp: str
    offset: int


class Consumer:
    def __init__(self, ends: dict[str, int | None]) -> None:
        self.ends = ends

    def highwater(self, tp: str) -> int | None:
        return self.ends[tp]


def test_each_key_is_repaired_once_and_only_below_the_first_seen_end() -> None:
    repair, consumer = Repair(), Consumer({"a": 10, "b": None})
    assert repair.due("t", "k", Message("a", 3), consumer)
    assert not repair.due("t", "k", Message("a", 4), consumer)  # sent already
    assert repair.due("other", "k", Message("a", 4), consumer)  # another table's key
    consumer.ends["a"] = 50  # records produced since this run first saw the partition
    assert not repair.due("t", "new", Message("a", 10), consumer)
    assert repair.due("t", "old", Message("a", 9), consumer)
    # An end not known yet: on the safe side until it is.
    assert repair.due("t", "x", Message("b", 100), consumer)
    consumer.ends["b"] = 5
    assert not repair.due("t", "y", Message("b", 100), consumer)
    assert repair.sent == 4
