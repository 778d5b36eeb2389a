"""The backup dir's lock: one backup at a time across gateways, a dead one's lock broken."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

from mercato.backups import jobs


def test_one_claim_holds_the_lock_until_it_is_released(tmp_path: Path) -> None:
    root = tmp_path / "backups"
    assert jobs.claim(root, "b1") is None
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    job = jobs.Job(root, "b1", stop=threading.Event())
    job.write()
    assert jobs.claim(root, "b2") == "b1"
    jobs.release(root, "b2")  # not the holder: the lock stays
    assert jobs.claim(root, "b3") == "b1"
    job.finish(None)
    jobs.release(root, "b1")
    assert jobs.claim(root, "b4") is None


def test_the_lock_of_a_killed_gateway_is_broken_once_its_status_is_stale(
    tmp_path: Path,
) -> None:
    root = tmp_path / "backups"
    assert jobs.claim(root, "b1") is None
    jobs.Job(root, "b1", stop=threading.Event()).write()
    stale = time.time() - jobs.STALE - 1
    os.utime(root / "b1.json", (stale, stale))

    assert jobs.claim(root, "b2") is None
    assert (root / jobs.LOCK).read_text() == "b2"
    assert sorted(p.name for p in root.iterdir()) == ["b1.json", jobs.LOCK]


def test_a_lock_claimed_a_moment_ago_without_its_status_yet_holds(tmp_path: Path) -> None:
    root = tmp_path / "backups"
    assert jobs.claim(root, "b1") is None
    assert jobs.claim(root, "b2") == "b1"
    # A finished backup's lock left behind (its gateway died before releasing) does not.
    job = jobs.Job(root, "b1", stop=threading.Event())
    job.finish("killed")
    assert jobs.claim(root, "b2") is None
