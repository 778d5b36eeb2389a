"""A killed worker's changelogs are repaired by its next run (``agents.runtime.changelogs``).

The loss itself takes a SIGKILL within the few milliseconds between a table write and its
changelog record, which no test can aim at. What these tests pin down is the repair: a
record the previous run applied is delivered again (as a crash before its offset commit
does) and recognised as applied; after an unclean exit its keys are sent to their
changelog anyway, so the changelog holds what the local store holds, and after a clean
exit nothing extra is sent.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from agents.runtime.changelogs import CLEAN_EXIT_FILE
from config import Settings
from mercato.embedded import Endpoints
from streams.admin import ensure_topics
from tests.conftest import make_settings
from tests.support.analytics import listed
from tests.support.files import eventually, mongo
from tests.support.http import gateway_client
from tests.support.orders import Client, account, place, read_topics, settled
from tests.support.processes import running_worker, tail

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


async def _changelog(env: Settings, key: str) -> list[dict[str, Any] | None]:
    """Every value of ``key`` on the saga table's changelog, oldest first."""
    records = await read_topics(env, [f"{env.app_id}-order-sagas-changelog"])
    return [orjson.loads(value) if value else None
            for _, k, value in records if k.decode().strip('"') == key]


async def _stored_version(env: Settings, order_id: str) -> int:
    client, db = mongo(env)
    try:
        doc = await db["orders"].find_one({"_id": order_id})
        assert doc is not None
        return int(doc["version"])
    finally:
        await client.close()


async def _completed_order(client: Client) -> str:
    _, seller = await account(client, "seller", patience=90)
    _, buyer = await account(client)
    product = await listed(client, seller, price="2.00", currency="USD")
    order_id = await place(client, buyer, [(product, 1)])
    await settled(client, buyer, order_id, until={"completed"})
    return order_id


@pytest.fixture
async def env(stack: Endpoints, tmp_path: Path) -> Settings:
    """A fresh app id, topic prefix and data dir, its topics created."""
    settings = make_settings(stack, tmp_path)
    await ensure_topics(settings)
    return settings


async def test_a_killed_workers_next_run_sends_its_tables_to_their_changelogs(
    env: Settings,
) -> None:
    log = env.data_dir / "worker.log"
    async with gateway_client(env) as client:
        async with running_worker(env, log) as proc:
            order_id = await _completed_order(client)
            proc.kill()
            await proc.wait()
        assert not (env.data_dir / CLEAN_EXIT_FILE).exists()
        version = await _stored_version(env, order_id)
        before = await _changelog(env, order_id)

        async with running_worker(env, log):
            async def repaired() -> bool:
                values = await _changelog(env, order_id)
                last = values[-1] if values else None
                return len(values) > len(before) and last is not None \
                    and last["version"] == version and last["status"] == "completed"

            await eventually(repaired, within=60, what="the saga's changelog to be repaired")
        assert "repaired" in tail(log, lines=10_000)


async def test_after_a_clean_exit_the_next_run_sends_nothing_again(env: Settings) -> None:
    log = env.data_dir / "worker.log"
    async with gateway_client(env) as client:
        async with running_worker(env, log) as proc:
            order_id = await _completed_order(client)
        if not (env.data_dir / CLEAN_EXIT_FILE).exists():
            # Faust's stop failed, outlasted the grace or left changes buffered (a busy
            # machine): unclean, and the next run repairs, which the other test covers.
            pytest.skip(f"the worker's stop was not clean (exit {proc.returncode})")
        sent = len(await _changelog(env, order_id))
        async with running_worker(env, log):
            await asyncio.sleep(2)  # what a repair would send is sent before the worker joins
            assert len(await _changelog(env, order_id)) == sent
        assert "repaired" not in tail(log, lines=10_000)


async def test_a_changelog_that_lost_its_tail_on_the_broker_is_refilled_from_local_state(
    env: Settings,
) -> None:
    # What a broker that loses acknowledged records does (noida stopped under load; Kafka
    # after an unclean leader election): the local store's offset is past the topic's end.
    # The emptied topic stands for it. Faust would refuse to start; the worker repairs.
    log = env.data_dir / "worker.log"
    changelog = f"{env.app_id}-order-sagas-changelog"
    async with gateway_client(env) as client:
        async with running_worker(env, log):
            order_id = await _completed_order(client)
        if not (env.data_dir / CLEAN_EXIT_FILE).exists():
            pytest.skip("the worker's stop was not clean: the next run repairs anyway")
        version = await _stored_version(env, order_id)
        admin = AIOKafkaAdminClient(bootstrap_servers=env.kafka_bootstrap)
        await admin.start()
        try:
            [described] = await admin.describe_topics([changelog])
            partitions = len(described["partitions"])
            await admin.delete_topics([changelog])
            await eventually(lambda: _gone(admin, changelog), within=30,
                             what="the changelog to be deleted")
            await admin.create_topics([NewTopic(changelog, partitions, 1)])
        finally:
            await admin.close()

        async with running_worker(env, log):
            async def refilled() -> bool:
                values = await _changelog(env, order_id)
                return bool(values) and values[-1] is not None \
                    and values[-1]["version"] == version

            await eventually(refilled, within=60, what="the emptied changelog to be refilled")
        assert "lost records the broker had acknowledged" in tail(log, lines=10_000)


async def _gone(admin: AIOKafkaAdminClient, topic: str) -> bool:
    return topic not in await admin.list_topics()
