"""``mercato backup restore DIR``: a backup produced again into an empty stack.

Checksums are verified before anything is written, and a target that has records in any
topic the backup holds (or file content) is refused: a restore adds to nothing. Topics are
created with the backup's partition counts and every record is produced again to the
partition it came from, in order, with its key, value, headers and timestamp. Offsets
start again at 0, so consumer group offsets are not restored: a worker started on the
empty stack recovers its tables from the restored changelogs and replays every topic,
which rebuilds the read models (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path
from typing import Any, TextIO

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from config import Settings
from mercato.backups import content, documents, manifest
from mercato.backups.errors import BackupError
from mercato.backups.progress import Progress
from mercato.backups.records import Record
from mercato.backups.topics import configs, partition_offsets, renamed
from stores.file_content import FILES
from stores.mongo import database, mongo_client
from streams.topics import BY_NAME, partitions

# Sends in flight before their acks are awaited: batches fill while memory stays bounded.
IN_FLIGHT = 2000


async def restore_backup(settings: Settings, directory: Path, *,
                         stream: TextIO | None = None) -> dict[str, Any]:
    """Restore the backup in ``directory`` into the stack ``settings`` names; its manifest."""
    document = manifest.read(directory)
    manifest.verify(directory, document)
    names = {topic: renamed(topic, source=document["source"], target=settings)
             for topic in document["topics"]}
    counts = {names[t]: len(entry["partitions"]) for t, entry in document["topics"].items()}
    _refuse_repartitioning(settings, counts)
    client = mongo_client(settings, app_name=f"{settings.app_id}-restore")
    try:
        db = database(client, settings)
        full = await documents.occupied(db)
        if await db[FILES].count_documents({}, limit=1):
            full.append(FILES)
        if full:
            raise BackupError(f"the target database {settings.mongo_database} is not empty "
                              f"({', '.join(full)} hold documents): restore into an empty stack")
        await _create_topics(settings, counts)
        total = sum(p["records"] for t in document["topics"].values()
                    for p in t["partitions"].values()) + int(document["content"]["bytes"])
        progress = Progress(total, label="restore", stream=stream)
        await _produce(settings, directory, document, names, progress)
        await content.load(db, directory, progress)
        await documents.load(db, directory, document["mongo"])
    finally:
        await client.close()
    progress.finish()
    return document


def _refuse_repartitioning(settings: Settings, counts: dict[str, int]) -> None:
    """Refuse target settings that give a catalogue topic another count than the backup's.

    Every record goes back to the partition it came from, and a table entry to the
    partition of the records that write it: under another count, keys would be on the
    wrong partitions for their state (docs/production.md, "Partitions").
    """
    wrong = {}
    for topic, count in counts.items():
        name = topic.removeprefix(settings.topic_prefix)
        if name != topic and name in BY_NAME and partitions(settings, name) != count:
            wrong[topic] = (count, partitions(settings, name))
    if wrong:
        listed = ", ".join(f"{t} has {have} (settings: {want})"
                           for t, (have, want) in sorted(wrong.items()))
        raise BackupError(f"the backup's partition counts differ from the target's "
                          f"MERCATO_TOPIC_PARTITIONS: {listed}. A restore puts every record "
                          "back on its partition, so restore with the backup's count; "
                          "repartitioning is not what a restore does")


async def _create_topics(settings: Settings, counts: dict[str, int]) -> None:
    """Create the backup's topics; refuse a topic that exists with records or another count."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap,
                                client_id=f"{settings.app_id}-restore")
    await admin.start()
    try:
        existing = [t for t in await admin.list_topics() if t in counts]
        described = await admin.describe_topics(existing) if existing else []
        have = {t["topic"]: len(t["partitions"]) for t in described}
        wrong = {t: n for t, n in have.items() if n != counts[t]}
        if wrong:
            raise BackupError("topics exist with another partition count than the backup's: "
                              + ", ".join(f"{t} has {n} (backup: {counts[t]})"
                                          for t, n in sorted(wrong.items())))
        full = await _with_records(settings, have)
        if full:
            raise BackupError("the target stack is not empty, nothing was restored: "
                              f"{', '.join(full)} hold records; restore into a new stack "
                              "(or another MERCATO_TOPIC_PREFIX and MERCATO_APP_ID)")
        missing = [NewTopic(t, n, settings.kafka_replication, topic_configs=configs(settings, t))
                   for t, n in sorted(counts.items()) if t not in have]
        if missing:
            await admin.create_topics(missing)
    finally:
        await admin.close()


async def _with_records(settings: Settings, have: dict[str, int]) -> list[str]:
    partitions = [TopicPartition(t, p) for t, n in have.items() for p in range(n)]
    bounds = await partition_offsets(settings, partitions, client="restore")
    return sorted({tp.topic for tp, (start, end) in bounds.items() if end > start})


async def _produce(settings: Settings, directory: Path, document: dict[str, Any],
                   names: dict[str, str], progress: Progress) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all",
                                enable_idempotence=settings.kafka_idempotent,
                                linger_ms=5, max_batch_size=256 * 1024,
                                client_id=f"{settings.app_id}-restore")
    await producer.start()
    try:
        for topic, entry in sorted(document["topics"].items()):
            for partition, part in sorted(entry["partitions"].items(), key=lambda p: int(p[0])):
                what = f"{names[topic]}[{partition}]"
                pending: list[asyncio.Future[Any]] = []
                with gzip.open(directory / part["file"], "rb") as lines:
                    for line in lines:
                        record = Record.parse(line)
                        # One partition's records are sent in order and the producer keeps
                        # that order (one batch in flight per partition).
                        pending.append(await producer.send(
                            names[topic], record.value, record.key, partition=int(partition),
                            timestamp_ms=record.timestamp, headers=list(record.headers)))
                        if len(pending) >= IN_FLIGHT:
                            await asyncio.gather(*pending)
                            progress.advance(len(pending), what)
                            pending = []
                await asyncio.gather(*pending)
                progress.advance(len(pending), what)
    finally:
        await producer.stop()
