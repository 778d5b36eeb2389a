"""Backups and rebuilds end to end (issue #16): a stack with users, products, orders and files
is backed up live; ``rebuild read-models`` on it reproduces every projection document by
document; the backup restored into a fresh stack and data dir rebuilds the same read models
and serves the same logins, orders and files."""

from __future__ import annotations

import asyncio
import hashlib
import io
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from config import Settings
from mercato.backups.create import create_backup
from mercato.backups.restore import restore_backup
from mercato.embedded import Endpoints
from mercato.rebuild import READ_MODELS, WorkerRunning, rebuild_read_models
from stores.analytics import SNAPSHOTS, WINDOWS
from streams.admin import ensure_topics
from streams.topics import worker_sources
from tests.conftest import make_settings
from tests.support.files import eventually, mongo, upload
from tests.support.http import worker_and_gateway
from tests.support.orders import PASSWORD, Client, place, product, settled

# ~35 s on an idle box: three worker starts (live, the rebuild's, the restored stack's) and
# two full replays; one run on a loaded shared box went past the default 120 s.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
Snapshot = dict[str, list[dict[str, Any]]]
CONTENT = b"the manual, page one\n" * 20_000  # two GridFS chunks


async def snapshot(settings: Settings) -> Snapshot:
    """Every document of every read model, in ``_id`` order."""
    client, db = mongo(settings)
    try:
        return {name: await db[name].find({}).sort("_id", 1).to_list()
                for name in READ_MODELS}
    finally:
        await client.close()


async def signed_up(client: Client, role: str) -> tuple[str, dict[str, str]]:
    """Register ``role``; its email and Authorization header (retrying while the worker opens)."""
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"

    async def register() -> Any:
        response = await client.post("/v1/auth/register", json={
            "email": email, "password": PASSWORD, "name": role.title(), "role": role})
        return None if response.status == 503 else response

    created = await eventually(register, within=30, what="a worker to answer")
    assert created.status == 201, await created.text()
    return email, await login(client, email)


async def login(client: Client, email: str) -> dict[str, str]:
    """Sign in with the test password; the Authorization header."""
    response = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status == 200, await response.text()
    return {"Authorization": f"Bearer {(await response.json())['accessToken']}"}


async def replayed(settings: Settings, within: float = 60) -> None:
    """Wait until the worker group committed every record now on the worker's topics;
    on a timeout, say which partitions lag."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    await consumer.start()
    try:
        await consumer.topics()
        tps = [TopicPartition(settings.topic(t), p) for t in worker_sources()
               for p in sorted(consumer.partitions_for_topic(settings.topic(t)) or ())]
        ends = await consumer.end_offsets(tps)
        deadline = time.monotonic() + within
        while True:
            committed = await admin.list_consumer_group_offsets(settings.app_id)
            lagging = {f"{tp.topic}[{tp.partition}]": (committed[tp].offset if tp in committed
                                                       else None, end)
                       for tp, end in ends.items()
                       if end > 0 and (tp not in committed or committed[tp].offset < end)}
            if not lagging:
                return
            assert time.monotonic() < deadline, f"the worker lags: {lagging}"
            await asyncio.sleep(0.2)
    finally:
        await consumer.stop()
        await admin.close()


async def analytics_counted(settings: Settings) -> None:
    """Wait for the marketplace dashboard to count the order (its stages lag the worker's)."""
    client, db = mongo(settings)
    try:
        async def counted() -> bool:
            doc = await db[SNAPSHOTS].find_one({"_id": "marketplace"})
            return doc is not None and doc["snapshot"]["today"]["orders"] == 1

        await eventually(counted, within=30, what="the analytics snapshot to count the order")
    finally:
        await client.close()


def clockless(name: str, doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` without what depends on the wall clock when it was written, not on the topics.

    The analytics snapshot is the dashboard as of its ``asOf`` (re-rendered every tick):
    ``lastHour`` is the hour before it and ``visitorsNow`` the visitors of the minutes before
    it. Every other field of every read model counts.
    """
    if name != SNAPSHOTS:
        return doc
    view = {k: v for k, v in doc["snapshot"].items()
            if k not in ("asOf", "lastHour", "visitorsNow")}
    return {**doc, "snapshot": view}


def later_window(name: str, key: str, taken_ms: int) -> bool:
    """A window the analytics timer closed after the live snapshot was taken."""
    return name == WINDOWS and int(key.rsplit("|", 1)[1]) >= taken_ms - 60_000


def differences(live: Snapshot, rebuilt: Snapshot, taken_ms: int) -> list[str]:
    """Where two snapshots differ, document by document (empty when equal)."""
    out = []
    for name in READ_MODELS:
        before = {d["_id"]: clockless(name, d) for d in live[name]}
        after = {d["_id"]: clockless(name, d) for d in rebuilt[name]}
        out += [f"{name}: {i} missing" for i in before.keys() - after.keys()]
        out += [f"{name}: {i} extra" for i in after.keys() - before.keys()
                if not later_window(name, i, taken_ms)]
        out += [f"{name}: {i}: {before[i]} != {after[i]}"
                for i in before.keys() & after.keys() if before[i] != after[i]]
    return out


async def test_backup_rebuild_and_restore(stack: Endpoints, tmp_path: Path) -> None:
    (tmp_path / "live").mkdir()
    (tmp_path / "fresh").mkdir()
    live = make_settings(stack, tmp_path / "live")
    await ensure_topics(live)
    backup = tmp_path / "backup"
    async with worker_and_gateway(live) as client:
        seller_email, seller = await signed_up(client, "seller")
        buyer_email, buyer = await signed_up(client, "buyer")
        uploaded = await upload(client, seller, CONTENT, name="manual.txt",
                                declared_type="text/plain")
        assert uploaded.status == 201, await uploaded.text()
        file_id = (await uploaded.json())["fileId"]
        product_id = await product(client, seller, stock=5, file_ids=[file_id])
        order_id = await place(client, buyer, [(product_id, 2)])
        order = await settled(client, buyer, order_id)
        assert order["status"] == "completed", order
        await replayed(live)
        await analytics_counted(live)
        await create_backup(live, backup, stream=io.StringIO())
        with pytest.raises(WorkerRunning, match="stop every `mercato worker` first"):
            await rebuild_read_models(live, stream=io.StringIO())
        before = await snapshot(live)
        taken_ms = int(time.time() * 1000)
    assert all(before[name] for name in ("users", "products", "orders", "files"))

    outbox = live.data_dir / "outbox" / "messages.jsonl"
    sent = outbox.read_bytes()
    await rebuild_read_models(live, stream=io.StringIO(), within=90)
    diff = differences(before, await snapshot(live), taken_ms)
    assert diff == [], "\n".join(diff)
    assert outbox.read_bytes() == sent  # the replay delivered no email again

    fresh = make_settings(stack, tmp_path / "fresh")
    await restore_backup(fresh, backup, stream=io.StringIO())
    async with worker_and_gateway(fresh) as client:
        # Compared before signing in: each sign-in is a new audit record.
        await replayed(fresh)
        await analytics_counted(fresh)
        restored = await snapshot(fresh)
        again = await login(client, buyer_email)
        await login(client, seller_email)

        async def restored_order() -> dict[str, Any] | None:
            response = await client.get(f"/v1/orders/{order_id}", headers=again)
            return await response.json() if response.status == 200 else None

        assert await eventually(restored_order, within=30, what="the restored order") == order
        got = await client.get(f"/v1/files/{file_id}/content", headers=seller)
        assert got.status == 200
        assert hashlib.sha256(await got.read()).hexdigest() == hashlib.sha256(CONTENT).hexdigest()
    diff = differences(before, restored, taken_ms)
    assert diff == [], "\n".join(diff)
