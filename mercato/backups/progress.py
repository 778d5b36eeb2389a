"""Progress of a backup or restore: a bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

# Plain lines (a log file, CI) at most this often, so a large backup does not flood them.
LINE_EVERY = 5.0
BAR_EVERY = 0.1
WIDTH = 30

Listener = Callable[[int, int, str], None]


class Progress:
    """Counts records (or bytes) done of a total, shown on ``stream``."""

    def __init__(self, total: int, *, label: str, stream: TextIO | None = None,
                 listener: Listener | None = None) -> None:
        self.total = total
        self.done = 0
        self._label = label
        self._stream = stream if stream is not None else sys.stderr
        self._tty = self._stream.isatty()
        self._listener = listener
        self._shown = 0.0
        self._what = ""

    def advance(self, count: int, what: str) -> None:
        """``count`` more done, now working on ``what`` (a topic partition, the content)."""
        self.done += count
        self._what = what
        now = time.monotonic()
        if now - self._shown >= (BAR_EVERY if self._tty else LINE_EVERY):
            self._show()
            self._shown = now

    def finish(self) -> None:
        """Show the final count (and end the bar's line)."""
        self._show()
        if self._tty:
            self._stream.write("\n")
        self._stream.flush()

    def _show(self) -> None:
        if self._listener is not None:
            self._listener(self.done, self.total, self._what)
        share = self.done / self.total if self.total else 1.0
        if self._tty:
            filled = int(share * WIDTH)
            bar = "#" * filled + "." * (WIDTH - filled)
            self._stream.write(f"\r{self._label} [{bar}] {share:4.0%} {self.done}/{self.total}"
                               f" {self._what[:40]:<40}")
        else:
            self._stream.write(f"{self._label}: {self.done}/{self.total} ({share:.0%}) "
                               f"{self._what}\n")
        self._stream.flush()
