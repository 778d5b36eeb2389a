"""Real ``mercato gateway`` processes for tests, live before yielding and reaped afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from config import Settings
from tests.support.processes import child_env, tail

LIVE_SECONDS = 30.0


@contextlib.asynccontextmanager
async def running_gateway(settings: Settings, port: int, log_path: Path) -> AsyncIterator[str]:
    """``mercato gateway`` for ``settings`` on ``port``; yields its base URL once live."""
    async with gateway_process(settings, port, log_path) as (base, _):
        yield base


@contextlib.asynccontextmanager
async def gateway_process(
    settings: Settings, port: int, log_path: Path
) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """``running_gateway``, yielding the process too (for a test that kills it)."""
    env = child_env(dataclasses.replace(settings, http_port=port))
    base = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mercato", "gateway",
            env=env, stdout=log, stderr=asyncio.subprocess.STDOUT,
        )
        try:
            await _wait_live(proc, base, log_path)
            yield base, proc
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 20)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


async def _wait_live(proc: asyncio.subprocess.Process, base: str, log_path: Path) -> None:
    deadline = time.monotonic() + LIVE_SECONDS
    async with aiohttp.ClientSession() as session:
        while True:
            if proc.returncode is not None:
                raise RuntimeError(f"gateway exited early:\n{tail(log_path)}")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(base + "/health/live") as response:
                    if response.status == 200:
                        return
            if time.monotonic() > deadline:
                raise RuntimeError(f"gateway not live in {LIVE_SECONDS}s:\n{tail(log_path)}")
            await asyncio.sleep(0.1)
