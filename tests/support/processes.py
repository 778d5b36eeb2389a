"""Real Mercato processes for tests: a worker subprocess, stopped and reaped afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from config import Settings
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
