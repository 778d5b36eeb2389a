"""Real Mercato processes for tests: a worker subprocess, stopped and reaped afterwards.

Also: waiting for processes that are not our children to exit, without racing pid reuse.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from config import Settings
from mercato._procs import die_with_parent
from stores.heartbeats import WorkerHeartbeats
from stores.redisdb import redis_client

JOIN_SECONDS = 45.0


def child_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process rebuild ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MERCATO_")}
    env.update(settings.to_env())
    return env


async def worker_joined(settings: Settings) -> bool:
    """Whether a worker is processing: its group is Stable and it has written a heartbeat.

    Joining the group is not enough: the worker then opens and recovers its tables,
    and commands sent meanwhile would expire.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_consumer_groups([settings.app_id])
        group = described[0].groups[0] if described and described[0].groups else None
        if group is None or group[2] != "Stable" or not group[5]:
            return False
    finally:
        await admin.close()
    redis = redis_client(settings)
    try:
        return await WorkerHeartbeats(redis, settings.app_id).processing() > 0
    finally:
        await redis.aclose()


@contextlib.asynccontextmanager
async def running_worker(
    settings: Settings, log_path: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``mercato worker`` for ``settings`` as a real child process, joined before yielding."""
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mercato", "worker",
            env=child_env(settings), stdout=log, stderr=asyncio.subprocess.STDOUT,
            preexec_fn=die_with_parent(),  # a killed test run leaves no worker behind
        )
        try:
            deadline = time.monotonic() + JOIN_SECONDS
            while not await worker_joined(settings):
                if proc.returncode is not None:
                    raise RuntimeError(f"worker exited early:\n{tail(log_path)}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"worker did not join in {JOIN_SECONDS}s:\n{tail(log_path)}")
                await asyncio.sleep(0.25)
            yield proc
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 30)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


def tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log file."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


@contextlib.contextmanager
def watched(pids: Mapping[str, int]) -> Iterator[dict[str, int]]:
    """A pidfd per named process; whatever is still alive at the end is SIGKILLed.

    A pidfd names that very process: a pid reused by another process (or thread: tids
    share the pid space, 32768 of them here) cannot pass for a survivor.
    """
    fds: dict[str, int] = {}
    try:
        for name, pid in pids.items():
            fds[name] = os.pidfd_open(pid)
        yield fds
    finally:
        for fd in fds.values():
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(fd, signal.SIGKILL)
            os.close(fd)


def exited(pidfds: Mapping[str, int]) -> list[str]:
    """The names of the watched processes that have exited by now."""
    return sorted(name for name, fd in pidfds.items() if _readable(fd, 0))


def survivors(pidfds: Mapping[str, int], timeout: float) -> list[str]:
    """Wait up to ``timeout`` seconds for every watched process to exit; who did not."""
    deadline = time.monotonic() + timeout
    pending = dict(pidfds)
    while pending:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        # A pidfd becomes readable when its process exits (a zombie counts as exited).
        ready, _, _ = select.select(list(pending.values()), [], [], remaining)
        pending = {name: fd for name, fd in pending.items() if fd not in ready}
    return sorted(pending)


def _readable(fd: int, timeout: float) -> bool:
    ready, _, _ = select.select([fd], [], [], timeout)
    return bool(ready)


def sigterm_ignored(pid: int) -> bool:
    """Whether process ``pid`` ignores SIGTERM now (its SigIgn mask in /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False
