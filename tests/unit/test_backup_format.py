"""A backup's record lines and its progress output, without servers."""

from __future__ import annotations

import io
from types import SimpleNamespace

from mercato.backups.progress import Progress
from mercato.backups.records import Record


def test_a_record_line_keeps_none_apart_from_empty_bytes() -> None:
    message = SimpleNamespace(offset=7, timestamp=1_764_000_000_000, key=None, value=b"",
                              headers=[("ce_id", b"e1"), ("blank", b"")])
    record = Record.of(message)
    again = Record.parse(record.line())
    assert again == record
    assert again.key is None
    assert again.value == b""
    assert Record.parse(Record(1, 2, b"k", None, ()).line()).value is None  # a tombstone


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_bar_and_a_log_gets_lines() -> None:
    bar = Terminal()
    shown = Progress(10, label="backup", stream=bar)
    shown.advance(5, "t.orders[0]")
    shown.finish()
    assert bar.getvalue().startswith("\rbackup [###############...............]  50% 5/10")
    assert bar.getvalue().endswith("\n")

    plain = io.StringIO()
    logged = Progress(4, label="restore", stream=plain)
    logged.advance(4, "t.orders[1]")
    logged.finish()
    assert plain.getvalue().splitlines()[-1] == "restore: 4/4 (100%) t.orders[1]"
