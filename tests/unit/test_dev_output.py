"""What ``mercato dev`` echoes of its children's logs: warnings, errors and crashes only."""

from __future__ import annotations

import io
from pathlib import Path

from mercato._follow import LogFollower, ProblemFilter

WORKER_LOG = """\
2026-12-01 08:51:06,566 INFO faust.worker [^Worker]: Starting...
2026-12-01 08:51:08,100 INFO faust.tables.recovery [^---Recovery]: Restoring state:
+-------------------------------------------+-----------+--------+
| mercato-users-decisions-changelog         | 0         | -1     |
+-------------------------------------------+-----------+--------+
2026-12-01 08:51:09,000 WARNING mercato.worker payment provider is slow
2026-12-01 08:51:09,500 ERROR faust.agents.agent Agent crashed
Traceback (most recent call last):
  File "agents/orders.py", line 1, in <module>
ValueError: boom
2026-12-01 08:51:10,000 INFO faust.tables.recovery [^---Recovery]: Worker ready
{"time": "2026-12-01T08:51:11.000+00:00", "level": "INFO", "message": "ready"}
{"time": "2026-12-01T08:51:12.000+00:00", "level": "CRITICAL", "message": "lost the broker"}
Traceback (most recent call last):
  File "mercato/__main__.py", line 6, in <module>
KeyError: 'x'
"""


def test_only_warning_and_error_records_with_their_lines_are_kept() -> None:
    problems = ProblemFilter()
    kept = [line for line in WORKER_LOG.splitlines() if problems.keep(line)]
    assert kept == [
        "2026-12-01 08:51:09,000 WARNING mercato.worker payment provider is slow",
        "2026-12-01 08:51:09,500 ERROR faust.agents.agent Agent crashed",
        "Traceback (most recent call last):",
        '  File "agents/orders.py", line 1, in <module>',
        "ValueError: boom",
        '{"time": "2026-12-01T08:51:12.000+00:00", "level": "CRITICAL", '
        '"message": "lost the broker"}',
        "Traceback (most recent call last):",
        '  File "mercato/__main__.py", line 6, in <module>',
        "KeyError: 'x'",
    ]


def test_the_follower_prints_the_problems_of_each_child_prefixed(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    log.write_text("2026-12-01 08:00:00,000 ERROR old news, before we started\n")
    out = io.StringIO()
    follower = LogFollower(out, interval=0.01)
    follower.add("worker", log)
    follower.add("gateway", tmp_path / "gateway.log")  # not there yet: skipped
    follower.start()
    with log.open("a") as handle:
        handle.write(WORKER_LOG)
    follower.stop()  # prints what is left before it returns
    lines = out.getvalue().splitlines()
    # Prefixes are padded to the longest name ("gateway").
    assert lines[0] == "worker  | " + WORKER_LOG.splitlines()[5]
    assert len(lines) == 9
    assert not any("INFO" in line or "old news" in line for line in lines)
