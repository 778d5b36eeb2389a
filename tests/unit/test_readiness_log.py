"""Readiness logs its changes once, with what fails (the probes themselves are not logged)."""

from __future__ import annotations

import logging
from typing import Any, cast

import pytest

from config import Settings
from gateway.ops.health import Readiness

UP = {"kafka": {"ok": True}, "worker": {"ok": True}}
DOWN = {"kafka": {"ok": True}, "worker": {"ok": False, "error": "no worker heartbeat"}}


def test_changes_are_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    readiness = Readiness(Settings(), cast(Any, None), cast(Any, None))
    with caplog.at_level(logging.INFO, logger="mercato.gateway"):
        for ready, checks in ((False, DOWN), (False, DOWN), (True, UP), (True, UP),
                              (False, DOWN), (False, DOWN)):
            readiness.note(ready, checks)
    lines = [(r.levelname, r.getMessage(), getattr(r, "failing", None))
             for r in caplog.records if r.name == "mercato.gateway"]
    failing = {"worker": "no worker heartbeat"}
    assert lines == [
        # Starting: workers join after the gateway.
        ("INFO", "gateway not ready (worker: no worker heartbeat)", failing),
        ("INFO", "gateway ready", None),
        ("WARNING", "gateway not ready (worker: no worker heartbeat)", failing),
    ]
