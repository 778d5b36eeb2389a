"""``mercato dev`` as a newcomer sees it: a short banner, quiet children, a CLI that finds it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_platform import DevStack, start_dev, stop_dev

# Alone after the parallel tiers (Makefile): each test runs a whole `mercato dev` stack.
pytestmark = [pytest.mark.e2e, pytest.mark.serial]
CLI_TIMEOUT = 120.0
BANNER_ROWS = ["API", "Docs", "Dashboard", "AsyncAPI", "Kafka", "MongoDB", "Redis", "Logs"]
# CSI and other escape sequences, and the backspaces a spinner draws with.
TERMINAL_CODES = re.compile(r"\x1b|\x08")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def dev_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data dir of this module's ``mercato dev``."""
    return tmp_path_factory.mktemp("devcli")


@pytest.fixture(scope="module")
def dev(dev_dir: Path) -> Iterator[DevStack]:
    """One ``mercato dev`` for the module (the last test stops it with Ctrl-C)."""
    stack = start_dev(dev_dir, _free_port())
    try:
        yield stack
    finally:
        if stack.proc.poll() is None:
            stop_dev(stack)


def _mercato(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    # No MERCATO_* at all, and a cwd without .mercato: what the CLI finds, it found itself.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MERCATO_")}
    return subprocess.run(
        [sys.executable, "-m", "mercato", *args], cwd=cwd, env={**clean, **(env or {})},
        capture_output=True, text=True, timeout=CLI_TIMEOUT, check=False,
    )


def _call(method: str, url: str, body: dict[str, Any] | None = None,
          token: str | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 - the dev stack's http://127.0.0.1 URL
        url, data=data, headers=headers, method=method
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - as above
        return json.loads(response.read())


def test_the_terminal_shows_a_short_readable_banner(dev: DevStack) -> None:
    lines = list(dev.lines)
    ready = next(i for i, line in enumerate(lines) if line.startswith("mercato ready"))
    shown = lines[: ready + 1]
    assert len(shown) <= 12, "\n".join(shown)
    assert shown[0].startswith("mercato dev: starting in ")
    rows = [m[1] for line in shown if (m := re.match(r"  (\w+) +\S", line))]
    assert rows == BANNER_ROWS
    assert all(len(line) <= 100 for line in shown), "\n".join(shown)
    assert not [line for line in lines if TERMINAL_CODES.search(line)]
    assert not [line for line in lines if " INFO " in line], "children's chatter on the terminal"


def test_admin_create_finds_the_dev_stack_of_its_data_dir(
    dev: DevStack, dev_dir: Path, tmp_path: Path
) -> None:
    email, password = "root@example.com", "root-password-123"
    result = _mercato("admin", "create", "--email", email, "--password", password,
                      "--data-dir", str(dev_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"admin {email} created" in result.stdout
    tokens = _call("POST", f"{dev.base}/v1/auth/login", {"email": email, "password": password})
    me = _call("GET", f"{dev.base}/v1/users/me", token=tokens["accessToken"])
    assert "admin" in me["roles"]


def test_topics_create_finds_the_dev_stack_through_mercato_data_dir(
    dev: DevStack, dev_dir: Path, tmp_path: Path
) -> None:
    result = _mercato("topics", "create", cwd=tmp_path, env={"MERCATO_DATA_DIR": str(dev_dir)})
    assert result.returncode == 0, result.stderr
    states = [line.split()[-1] for line in result.stdout.splitlines()]
    assert states, result.stdout
    assert set(states) == {"exists"}, result.stdout


def _child_pid(parent: int, command: str) -> int | None:
    """The pid of ``parent``'s child whose command line contains ``command``."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[1]) == parent and command in cmdline:
            return int(stat.parent.name)
    return None


def _eventually(probe: Any, what: str, within: float = 90.0) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            if value := probe():
                return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_killed_worker_is_started_again_and_the_stack_carries_on(dev: DevStack) -> None:
    worker = _child_pid(dev.proc.pid, "mercato worker")
    assert worker is not None
    os.kill(worker, signal.SIGKILL)
    said = _eventually(lambda: [line for line in dev.lines if "worker" in line
                                and "starting it again" in line], "the restart notice")
    assert "SIGKILL" in said[0] or "-9" in said[0], said
    _eventually(lambda: any("worker started again" in line for line in dev.lines),
                "the worker to start again")
    again = _child_pid(dev.proc.pid, "mercato worker")
    assert again is not None
    assert again != worker
    # The new worker processes commands: a registration is answered by its agent.
    registered = _eventually(lambda: _call(
        "POST", f"{dev.base}/v1/auth/register",
        {"email": "after-crash@example.com", "password": "correct horse 123", "name": "Ari"},
    ), "a registration after the restart")
    assert registered["email"] == "after-crash@example.com"


def test_after_ctrl_c_the_chatter_is_in_the_logs_without_terminal_codes(
    dev: DevStack, dev_dir: Path
) -> None:
    assert stop_dev(dev) == 0  # every child has exited: its log is complete
    logs = {log.name: log.read_text(errors="replace") for log in (dev_dir / "logs").glob("*.log")}
    assert {"worker.log", "gateway.log", "kafka.log", "mongo.log", "redis.log"} <= set(logs)
    assert {name for name, text in logs.items() if TERMINAL_CODES.search(text)} == set()
    assert "faust.tables.recovery" in logs["worker.log"]
    assert not [line for line in dev.lines if "faust.tables.recovery" in line]
