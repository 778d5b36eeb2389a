"""``mercato backup create`` / ``restore`` against the real broker and MongoDB server: every
record comes back to its partition in order with its key, value, headers and timestamp, the
file content with its sha256, and damaged backups or non-empty targets are refused."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import hashlib
import io
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any, cast

import bson
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from config import Settings
from mercato.backups import content as backup_content
from mercato.backups.create import create_backup
from mercato.backups.errors import BackupError
from mercato.backups.progress import Progress
from mercato.backups.restore import restore_backup
from mercato.cli import main
from mercato.embedded import Endpoints
from stores.file_content import CHUNKS, ContentStore
from streams.admin import ensure_topics
from tests.conftest import make_settings

pytestmark = pytest.mark.integration
Row = tuple[int, int, bytes | None, bytes | None, tuple[tuple[str, bytes], ...]]
BIG = bytes(range(256)) * 3000  # three GridFS chunks, the last one partial


@pytest.fixture
async def target(stack: Endpoints, tmp_path: Path) -> AsyncIterator[Settings]:
    """A second, empty stack on the same servers (own prefix, app id and database)."""
    settings = make_settings(stack, tmp_path / "target")
    yield settings
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
    await mongo.drop_database(settings.mongo_database)
    await mongo.close()


@pytest.fixture
async def source_db(topics: Settings) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    """The source stack's database, dropped afterwards."""
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(topics.mongo_url, tz_aware=True)
    yield mongo[topics.mongo_database]
    await mongo.drop_database(topics.mongo_database)
    await mongo.close()


def changelog(settings: Settings) -> str:
    return f"{settings.app_id}-orders-changelog"


async def fill(settings: Settings, db: AsyncDatabase[dict[str, Any]]) -> None:
    """Records of every shape on two catalogue topics and a Faust-named changelog; two files."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    # Set, and recent: the broker deletes records older than the topics' retention.
    base = int(time.time() * 1000) - 60_000
    await producer.start()
    try:
        for n in range(30):
            await producer.send_and_wait(
                settings.topic("orders"), f"v{n}".encode(), f"order-{n % 7}".encode(),
                partition=n % 4, timestamp_ms=base + n,
                headers=[("ce_id", f"e{n}".encode()), ("empty", b"")])
        await producer.send_and_wait(settings.topic("audit"), b"keyless", None, partition=2)
        await producer.send_and_wait(changelog(settings), b"{}", b"k1", partition=0)
        await producer.send_and_wait(changelog(settings), None, b"k1", partition=0)  # tombstone
    finally:
        await producer.stop()
    content = ContentStore(db)
    await content.put("f-big", BIG, filename="big.bin", metadata={"owner": "u1"})
    await content.put("f-small", b"hello", filename="small.txt", metadata={"owner": "u2"})
    # Written by the gateway alone, on no topic: copied as it is.
    await db["webhooks"].insert_one({"_id": "w1", "ownerId": "u1", "url": "https://x.test/h"})


async def rows(settings: Settings, topic: str, partitions: int) -> dict[int, list[Row]]:
    """Every record of ``topic``, per partition, as (offset-free) comparable rows."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    out: dict[int, list[Row]] = {}
    try:
        for p in range(partitions):
            tp = TopicPartition(topic, p)
            end = (await consumer.end_offsets([tp]))[tp]
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            got: list[Row] = []
            while await consumer.position(tp) < end:
                for m in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
                    got.append((m.partition, m.timestamp, m.key, m.value,
                                tuple((k, bytes(v)) for k, v in m.headers)))
            out[p] = got
    finally:
        await consumer.stop()
    return out


async def test_a_restored_stack_has_every_record_in_place_and_the_same_files(
    topics: Settings, source_db: AsyncDatabase[dict[str, Any]], target: Settings,
    tmp_path: Path,
) -> None:
    await fill(topics, source_db)
    await ensure_topics(target)  # an empty target with the topics created is still empty
    backup = tmp_path / "backup"
    shown = io.StringIO()

    made = await create_backup(topics, backup, stream=shown)

    orders = made["topics"][topics.topic("orders")]["partitions"]
    assert sum(p["records"] for p in orders.values()) == 30
    assert made["topics"][changelog(topics)]["partitions"]["0"]["records"] == 2
    assert made["content"] == {"files": 2, "chunks": 4, "bytes": len(BIG) + 5}
    assert made["mongo"]["webhooks"] == 1
    assert "backup:" in shown.getvalue()  # plain progress lines: not a terminal
    assert set(made["sha256"]) == {p.relative_to(backup).as_posix()
                                   for p in backup.rglob("*")
                                   if p.is_file() and p.name != "manifest.json"}

    await restore_backup(target, backup, stream=io.StringIO())

    for name, count in (("orders", 4), ("audit", 4)):
        assert await rows(target, target.topic(name), count) == \
            await rows(topics, topics.topic(name), count)
    # Auto-created by the producer, with the broker's default count: restored with it.
    count = len(made["topics"][changelog(topics)]["partitions"])
    restored_changelog = await rows(target, changelog(target), count)
    assert [r[3] for r in restored_changelog[0]] == [b"{}", None]
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(target.mongo_url, tz_aware=True)
    try:
        content = ContentStore(mongo[target.mongo_database])
        data = await content.read_all("f-big", limit=len(BIG))
        assert hashlib.sha256(data).hexdigest() == hashlib.sha256(BIG).hexdigest()
        assert await content.read_all("f-small", limit=5) == b"hello"
        doc = await content.files.find_one({"_id": "f-small"})
        assert doc is not None
        assert doc["metadata"] == {"owner": "u2"}
        assert await mongo[target.mongo_database]["webhooks"].find({}).to_list() == [
            {"_id": "w1", "ownerId": "u1", "url": "https://x.test/h"}]
    finally:
        await mongo.close()

    with pytest.raises(BackupError, match="not empty"):
        await restore_backup(on_fresh_database(target), backup, stream=io.StringIO())
    eight = dataclasses.replace(on_fresh_database(target), topic_prefix="t8.", app_id="t8",
                                topic_partitions=8)
    with pytest.raises(BackupError, match="partition counts differ"):
        await restore_backup(eight, backup, stream=io.StringIO())
    with pytest.raises(BackupError, match="not an empty directory"):
        await create_backup(topics, backup, stream=io.StringIO())


def on_fresh_database(settings: Settings) -> Settings:
    """``settings`` on a fresh database, so the topics' records are what refuses the restore."""
    url = settings.mongo_url.rsplit("/", 1)[0] + "/" + settings.mongo_database + "_nofiles"
    return dataclasses.replace(settings, mongo_url=url)


async def test_a_damaged_backup_is_refused_before_anything_is_created(
    topics: Settings, source_db: AsyncDatabase[dict[str, Any]], target: Settings,
    tmp_path: Path,
) -> None:
    await fill(topics, source_db)
    backup = tmp_path / "backup"
    made = await create_backup(topics, backup, stream=io.StringIO())
    part = backup / made["topics"][topics.topic("orders")]["partitions"]["1"]["file"]
    lines = gzip.decompress(part.read_bytes()).splitlines(keepends=True)
    record = orjson.loads(lines[0])
    record["value"] = "dGFtcGVyZWQ="  # "tampered"
    part.write_bytes(gzip.compress(orjson.dumps(record) + b"\n" + b"".join(lines[1:])))

    with pytest.raises(BackupError, match=r"damaged.*orders/1\.jsonl\.gz does not match"):
        await restore_backup(target, backup, stream=io.StringIO())
    consumer = AIOKafkaConsumer(bootstrap_servers=target.kafka_bootstrap, group_id=None)
    await consumer.start()
    try:
        assert not {t for t in await consumer.topics() if t.startswith(target.topic_prefix)}
    finally:
        await consumer.stop()


async def test_the_commands_print_what_they_did_and_refuse_with_exit_1(
    topics: Settings, source_db: AsyncDatabase[dict[str, Any]], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    await fill(topics, source_db)
    for name, value in topics.to_env().items():
        monkeypatch.setenv(name, value)
    backup = tmp_path / "cli-backup"

    assert await asyncio.to_thread(main, ["backup", "create", str(backup)]) == 0
    assert "backed up 33 records" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["backup", "create", str(backup)]) == 1
    assert "is not an empty directory" in capsys.readouterr().err
    # The source stack itself is not empty: restoring into it is refused.
    assert await asyncio.to_thread(main, ["backup", "restore", str(backup)]) == 1
    assert "not empty" in capsys.readouterr().err


async def test_file_chunks_are_copied_a_batch_of_file_ids_at_a_time(
    source_db: AsyncDatabase[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two ids per chunks query, so five files take three queries, the last one partial.
    monkeypatch.setattr(backup_content, "ID_BATCH", 2)
    store = ContentStore(source_db)
    for n in range(5):
        await store.put(f"f{n}", BIG if n == 3 else f"file {n}".encode(), filename=f"{n}.bin",
                        metadata={"owner": "u1"})
    progress = Progress(0, label="backup", stream=io.StringIO())

    copied = await backup_content.dump(source_db, tmp_path, progress)

    assert copied == {"files": 5, "chunks": 7, "bytes": len(BIG) + 4 * len(b"file 0")}
    with gzip.open(backup_content.paths(tmp_path)[CHUNKS], "rb") as stream:
        docs = bson.decode_file_iter(cast(IO[bytes], stream))
        chunks = [(doc["files_id"], doc["n"]) for doc in docs]
    assert chunks == [("f0", 0), ("f1", 0), ("f2", 0), ("f3", 0), ("f3", 1), ("f3", 2),
                      ("f4", 0)]
