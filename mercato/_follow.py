"""Echo the warnings and errors appended to child logs on the terminal, prefixed by child."""

from __future__ import annotations

import re
import sys
import threading
from pathlib import Path
from typing import TextIO

import orjson

PROBLEM_LEVELS = frozenset({"WARNING", "ERROR", "CRITICAL"})
# The first line of a record in either format of gateway/http/logs.py: text or JSON.
_TEXT_RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (?P<level>[A-Z]+) ")
_CRASH = "Traceback (most recent call last):"


class ProblemFilter:
    """Which lines of one log are worth a terminal: warning and error records, crashes.

    A record's continuation lines (a traceback, a Faust table) go with their record.
    """

    def __init__(self) -> None:
        self._showing = False

    def keep(self, line: str) -> bool:
        """Whether ``line``, the next line of the log, should be shown."""
        level = _level(line)
        if level is not None:
            self._showing = level in PROBLEM_LEVELS
        elif line.startswith(_CRASH):  # an uncaught exception, printed outside logging
            self._showing = True
        return self._showing


def _level(line: str) -> str | None:
    match = _TEXT_RECORD.match(line)
    if match:
        return match["level"]
    if line.startswith("{"):
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            return None
        level = record.get("level") if isinstance(record, dict) else None
        return level if isinstance(level, str) else None
    return None


class LogFollower:
    """A background thread that tails a set of log files from their current end."""

    def __init__(self, out: TextIO = sys.stdout, interval: float = 0.2) -> None:
        self._out = out
        self._interval = interval
        self._files: list[tuple[str, Path, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-follower", daemon=True)
        self._width = 0

    def add(self, prefix: str, path: Path) -> None:
        """Follow ``path`` from its current size on; call before ``start``."""
        offset = path.stat().st_size if path.exists() else 0
        self._files.append((prefix, path, offset))
        self._width = max(self._width, len(prefix))

    def start(self) -> None:
        """Start following."""
        self._thread.start()

    def stop(self) -> None:
        """Print what is left and stop the thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _run(self) -> None:
        handles: dict[str, TextIO] = {}
        buffers: dict[str, str] = {}
        filters = {prefix: ProblemFilter() for prefix, _, _ in self._files}
        try:
            while True:
                stopping = self._stop.is_set()
                for prefix, path, offset in self._files:
                    if prefix not in handles:
                        if not path.exists():
                            continue
                        handle: TextIO = path.open("r", encoding="utf-8", errors="replace")
                        handle.seek(offset)
                        handles[prefix] = handle
                    chunk = buffers.get(prefix, "") + handles[prefix].read()
                    *lines, rest = chunk.split("\n")
                    buffers[prefix] = rest
                    for line in lines:
                        if filters[prefix].keep(line):
                            self._out.write(f"{prefix:<{self._width}} | {line}\n")
                self._out.flush()
                if stopping:
                    return
                self._stop.wait(self._interval)
        finally:
            for opened in handles.values():
                opened.close()
