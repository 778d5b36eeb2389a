"""The stack the orders benchmark drives: embedded services, a worker and a gateway process."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiohttp
from aiokafka.admin import AIOKafkaAdminClient

from bench.common import BenchError
from config import Settings
from mercato._procs import free_port, log_tail
from mercato.embedded import Endpoints
from streams.admin import ensure_topics

START_SECONDS = 90.0


@dataclasses.dataclass(frozen=True, slots=True)
class Running:
    """The live stack: settings, the gateway's base URL and the processes' pids."""

    settings: Settings
    base: str
    worker_pid: int
    gateway_pid: int


def bench_settings(endpoints: Endpoints, data_dir: Path) -> Settings:
    """Isolated settings for one run; no rate limits (they would refuse the load)."""
    run = uuid.uuid4().hex[:8]
    return Settings(
        env="dev", kafka_url=endpoints.kafka_url, mongo_url=endpoints.mongo_url,
        redis_url=endpoints.redis_url, data_dir=data_dir, jwt_secret="bench-" + "x" * 40,
        topic_prefix=f"b{run}.", app_id=f"mercato-bench-{run}",
        kafka_idempotent=endpoints.broker != "tansu", rate_limit_enabled=False,
        worker_session_timeout=30.0, log_json=False, log_level="WARNING",
    )


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MERCATO_")}
    return {**env, **settings.to_env()}


async def _joined(settings: Settings) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_consumer_groups([settings.app_id])
        group = described[0].groups[0] if described and described[0].groups else None
        return group is not None and group[2] == "Stable" and bool(group[5])
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def _process(argv: Sequence[str], settings: Settings, log: Path) -> AsyncIterator[int]:
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *argv, env=_env(settings), stdout=out, stderr=asyncio.subprocess.STDOUT)
        try:
            yield proc.pid
            if proc.returncode is not None:
                raise BenchError(f"{argv[-1]} exited with {proc.returncode}:\n{log_tail(log)}")
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 30)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


@contextlib.asynccontextmanager
async def running_stack(endpoints: Endpoints, scratch: Path) -> AsyncIterator[Running]:
    """Topics, ``mercato worker`` (joined) and ``mercato gateway`` (live), torn down after."""
    settings = bench_settings(endpoints, scratch / "data")
    settings = dataclasses.replace(settings, http_port=free_port())
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    await ensure_topics(settings)
    python = sys.executable
    async with _process([python, "-m", "mercato", "worker"], settings,
                        scratch / "worker.log") as worker_pid:
        deadline = time.monotonic() + START_SECONDS
        while not await _joined(settings):
            if time.monotonic() > deadline:
                raise BenchError(f"worker did not join:\n{log_tail(scratch / 'worker.log')}")
            await asyncio.sleep(0.25)
        async with _process([python, "-m", "mercato", "gateway"], settings,
                            scratch / "gateway.log") as gateway_pid:
            base = f"http://127.0.0.1:{settings.http_port}"
            await _live(base, scratch / "gateway.log")
            yield Running(settings=settings, base=base, worker_pid=worker_pid,
                          gateway_pid=gateway_pid)


async def _live(base: str, log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(base + "/health/live") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.2)
    raise BenchError(f"gateway did not come up:\n{log_tail(log)}")


async def seed_users(settings: Settings, user_ids: Sequence[str]) -> None:
    """Accounts for the buyers and the seller, projected straight into the users read model."""
    from gateway.identity.passwords import hash_password
    from stores.mongo import database, ensure_indexes, mongo_client
    from stores.users import UserRepository

    client = mongo_client(settings, app_name="mercato-bench")
    try:
        db = database(client, settings)
        await ensure_indexes(db)
        users = UserRepository(db)
        password_hash = await hash_password("bench-password")
        now = datetime.datetime.now(datetime.UTC)
        for user_id in user_ids:
            email = f"{user_id}@example.com"
            await users.project_registered(
                user_id=user_id, email=email, email_normalized=email, name=user_id,
                roles=["buyer"], password_hash=password_hash, created_at=now,
                event_id=uuid.uuid4().hex)
    finally:
        await client.close()
