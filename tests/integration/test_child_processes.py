"""A child of ``mercato._procs.spawn`` dies for certain: stopped, or with its killed parent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mercato._procs import spawn, terminate
from tests.support.processes import sigterm_ignored, survivors, watched

pytestmark = pytest.mark.integration
DEADLINE = 60.0  # bounds a failure only: nothing here waits for it when all is well

# A server whose graceful stop never ends, as secantus' could: SIGTERM does nothing.
_STUBBORN = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); signal.pause()"
_PARENT = f"""
import json, sys
from pathlib import Path
from mercato._procs import spawn
child = spawn([sys.executable, "-c", {_STUBBORN!r}], Path(sys.argv[1]))
print(json.dumps(child.pid), flush=True)
sys.stdin.read()
"""


def _wait_until_sigterm_ignored(pid: int) -> None:
    deadline = time.monotonic() + DEADLINE
    while not sigterm_ignored(pid):
        assert time.monotonic() < deadline, "the child never set its SIGTERM handler"
        time.sleep(0.05)


def test_a_child_that_ignores_sigterm_dies_with_its_killed_parent(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, str(tmp_path / "child.log")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert parent.stdout is not None
        pid: int = json.loads(parent.stdout.readline())
        with watched({"child": pid}) as pidfds:
            _wait_until_sigterm_ignored(pid)
            os.kill(parent.pid, signal.SIGKILL)
            parent.wait(DEADLINE)
            assert survivors(pidfds, DEADLINE) == []
    finally:
        parent.kill()
        parent.wait()
        for pipe in (parent.stdin, parent.stdout):
            if pipe is not None:
                pipe.close()


def test_a_stop_that_hangs_is_cut_short_by_sigkill(tmp_path: Path) -> None:
    child = spawn([sys.executable, "-c", _STUBBORN], tmp_path / "child.log")
    try:
        _wait_until_sigterm_ignored(child.pid)
        assert terminate(child, grace=0.5) == -signal.SIGKILL
    finally:
        child.kill()
        child.wait()
