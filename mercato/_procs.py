"""Child-process plumbing shared by the embedded stack and the dev supervisor."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import socket
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

PR_SET_PDEATHSIG = 1
LOG_TAIL_LINES = 30


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def die_with_parent() -> Callable[[], None]:
    """A ``preexec_fn`` that makes the child be SIGKILLed when the calling thread dies."""
    parent_pid = os.getpid()
    # Loaded before fork: dlopen in the forked child of a threaded parent can deadlock.
    prctl = _libc().prctl

    def preexec() -> None:
        # Why the kernel's PR_SET_PDEATHSIG, and why SIGKILL: it is delivered by the kernel
        # however we die (SIGKILL, OOM killer, os._exit, a crash), with nothing of ours left
        # to run; SIGKILL cannot be caught, ignored or stuck in a handler. SIGTERM was not
        # certain: secantus answers it with a graceful stop() that can hang, and a killed
        # test run left it alive for good. A watchdog (a wrapper reading a pipe from us)
        # would add a process per child that can be killed in turn. Graceful stops are
        # still the rule: every orderly stop goes through terminate(). This is only the
        # crash path, where the servers recover as from any crash (Redis replays its AOF,
        # secantus its WiredTiger journal; both are written before a write is answered).
        # The signal fires when the parent *thread* exits, so start children from the
        # thread that lives as long as they should (the main thread, in every caller here).
        if prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def spawn(
    argv: Sequence[str],
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` with stdout+stderr appended to ``log_path``; it is killed when we die."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=None if env is None else dict(env),
            cwd=cwd,
            # Same session, own process group: a terminal Ctrl-C reaches only us, so we can
            # stop the children in order; PDEATHSIG covers our dying without cleaning up.
            start_new_session=False,
            process_group=0,
            preexec_fn=die_with_parent(),
        )


def terminate(proc: subprocess.Popen[bytes], grace: float = 10.0) -> int | None:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL; returns the exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
    return proc.returncode


def log_size(path: Path) -> int:
    """The current size of a log, to read only what a new run appends."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def log_tail(path: Path, lines: int = LOG_TAIL_LINES, *, since: int = 0) -> str:
    """The last ``lines`` lines written to a log after byte ``since`` ("" if none)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(since, size - 64 * 1024))
            data = handle.read()
    except FileNotFoundError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def describe_exit(code: int) -> str:
    """``exited with code 1`` or ``was killed by SIGKILL``."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS considers free right now (bind to port 0 and release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could bind ``host:port`` now (TIME_WAIT leftovers do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Servers set SO_REUSEADDR too, so a port in TIME_WAIT is usable by them.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True
