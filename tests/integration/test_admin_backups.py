"""POST/GET /v1/admin/backups on the whole gateway app, against the real broker and MongoDB:
an admin starts a backup, follows it to completed with its manifest summary; one running
refuses a second; buyers and anonymous callers are refused."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from config import Settings
from mercato.backups.manifest import read
from tests.support.files import bearer, eventually
from tests.support.http import gateway_client
from tests.support.orders import Client

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(topics: Settings) -> AsyncIterator[Client]:
    """The gateway over this test's topics, with a record on one of them."""
    producer = AIOKafkaProducer(bootstrap_servers=topics.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topics.topic("audit"), b"a record", b"k")
    finally:
        await producer.stop()
    async with gateway_client(topics) as c:
        yield c


async def test_an_admin_starts_a_backup_and_follows_it_to_completed(
    client: Client, topics: Settings
) -> None:
    admin = bearer(topics, "u-admin", "admin")
    started = await client.post("/v1/admin/backups", headers=admin)
    assert started.status == 202, await started.text()
    body = await started.json()
    assert body["status"] == "running"
    assert Path(body["location"]).parent == topics.data_dir / topics.backup_dir

    async def completed() -> dict[str, Any] | None:
        listed = await (await client.get("/v1/admin/backups", headers=admin)).json()
        ours = [b for b in listed["data"] if b["backupId"] == body["backupId"]]
        return ours[0] if ours and ours[0]["status"] != "running" else None

    done = await eventually(completed, within=30, what="the backup to finish")
    assert done["status"] == "completed", done
    assert done["error"] is None
    assert done["manifest"]["records"] == 1
    assert done["sizeBytes"] > 0
    assert read(Path(done["location"]))["topics"]
    # Owner only: a backup holds password hashes and webhook secrets.
    for directory in (Path(done["location"]), Path(done["location"]).parent):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    assert not (directory / "running.lock").exists()  # given back when it finished


async def test_a_running_backup_refuses_a_second_and_a_lost_one_is_listed_failed(
    client: Client, topics: Settings
) -> None:
    admin = bearer(topics, "u-admin", "admin")
    root = topics.data_dir / topics.backup_dir
    root.mkdir(parents=True)
    running = {"backupId": "20260101T000000Z-aaaaaa", "status": "running",
               "createdAt": "2026-01-01T00:00:00.000Z", "location": str(root / "x"),
               "error": None, "progress": {"done": 1, "total": 2}}
    (root / "20260101T000000Z-aaaaaa.json").write_bytes(orjson.dumps(running))

    refused = await client.post("/v1/admin/backups", headers=admin)
    assert refused.status == 409
    assert (await refused.json())["code"] == "BACKUP_RUNNING"

    # Its gateway stopped beating it: listed as failed, and no longer in the way.
    stale = time.time() - 120
    os.utime(root / "20260101T000000Z-aaaaaa.json", (stale, stale))
    listed = await (await client.get("/v1/admin/backups", headers=admin)).json()
    assert [b["status"] for b in listed["data"]] == ["failed"]
    assert (await client.post("/v1/admin/backups", headers=admin)).status == 202


async def test_only_admins_may_back_up(client: Client, topics: Settings) -> None:
    buyer = bearer(topics, "u-buyer", "buyer")
    for method in ("GET", "POST"):
        assert (await client.request(method, "/v1/admin/backups")).status == 401
        assert (await client.request(method, "/v1/admin/backups", headers=buyer)).status == 403


async def test_a_backup_starts_in_maintenance_mode(client: Client, topics: Settings) -> None:
    admin = bearer(topics, "u-admin", "admin")
    switched = await client.put("/v1/admin/features/maintenance", json={"enabled": True},
                                headers=admin)
    assert switched.status == 200, await switched.text()
    assert (await client.post("/v1/auth/register", json={})).status == 503  # writes refused

    started = await client.post("/v1/admin/backups", headers=admin)
    assert started.status == 202, await started.text()
