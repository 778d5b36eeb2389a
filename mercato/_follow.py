"""Echo the lines appended to child logs on the terminal, prefixed by the child's name."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import TextIO


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
        handles: dict[str, tuple[str, TextIO]] = {}
        buffers: dict[str, str] = {}
        try:
            while True:
                stopping = self._stop.is_set()
                for prefix, path, offset in self._files:
                    if prefix not in handles:
                        if not path.exists():
                            continue
                        handle: TextIO = path.open("r", encoding="utf-8", errors="replace")
                        handle.seek(offset)
                        handles[prefix] = (prefix, handle)
                    chunk = buffers.get(prefix, "") + handles[prefix][1].read()
                    *lines, rest = chunk.split("\n")
                    buffers[prefix] = rest
                    for line in lines:
                        self._out.write(f"{prefix:<{self._width}} | {line}\n")
                self._out.flush()
                if stopping:
                    return
                self._stop.wait(self._interval)
        finally:
            for _, opened in handles.values():
                opened.close()
