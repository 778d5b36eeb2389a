"""``mercato backup create DIR``: every topic's records, the file content and the manifest.

The snapshot of each partition ends at the end offset read when the backup starts:
records produced meanwhile are left for the next backup, so every partition is a
consistent prefix of its log. Partitions are not consistent with each other (Kafka has
no cut across partitions); a restore replays each into the same partition, and the
agents' idempotence covers an event whose cause or effect fell after the cut.
"""

from __future__ import annotations

import functools
import gzip
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from config import Settings
from mercato.backups import content, documents, manifest
from mercato.backups.errors import BackupError
from mercato.backups.progress import Listener, Progress
from mercato.backups.records import Record
from mercato.backups.topics import Offsets, belongs, partition_offsets
from stores.mongo import database, mongo_client
from streams.envelope import format_time, utcnow

FETCH_MS = 1000
# A partition whose position stops short of its end offset this many fetches in a row is
# unreadable (records deleted by retention while we read, or a broker away): refuse.
STALLED_FETCHES = 30
TOPICS = "topics"


async def snapshot_offsets(settings: Settings) -> Offsets:
    """Start and end offset of every partition of every topic of the stack, read now."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap,
                                client_id=f"{settings.app_id}-backup")
    await admin.start()
    try:
        names = sorted(t for t in await admin.list_topics() if belongs(settings, t))
        described = await admin.describe_topics(names) if names else []
    finally:
        await admin.close()
    partitions = [TopicPartition(t["topic"], p["partition"])
                  for t in described for p in t["partitions"]]
    return await partition_offsets(settings, partitions, client="backup")


def _consumer(settings: Settings) -> AIOKafkaConsumer:
    # No group: partitions are assigned by hand and nothing is committed.
    return AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None,
                            enable_auto_commit=False, client_id=f"{settings.app_id}-backup")


def _prepare(directory: Path) -> None:
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise BackupError(f"{directory} is not an empty directory: a backup goes into a new "
                          "(or empty) one, so it never mixes with another")
    # Owner only, even in an existing empty directory: the copied collections hold
    # password hashes and webhook secrets.
    directory.mkdir(mode=manifest.PRIVATE, parents=True, exist_ok=True)
    directory.chmod(manifest.PRIVATE)


def _checksums(directory: Path) -> dict[str, str]:
    return {p.relative_to(directory).as_posix(): manifest.sha256_of(p)
            for p in sorted(directory.rglob("*")) if p.is_file()}


async def create_backup(settings: Settings, directory: Path, *, stream: TextIO | None = None,
                        listener: Listener | None = None) -> dict[str, Any]:
    """Write a backup of the stack ``settings`` names into ``directory``; returns the manifest."""
    # Blocking file I/O throughout: the CLI runs it as it is, the gateway in a thread of its
    # own (gateway.ops.backups), never on a loop that serves anything else.
    _prepare(directory)
    created_at = format_time(utcnow())
    offsets = await snapshot_offsets(settings)
    client = mongo_client(settings, app_name=f"{settings.app_id}-backup")
    try:
        db = database(client, settings)
        content_bytes = await content.measure(db)
        total = sum(end - start for start, end in offsets.values()) + content_bytes
        progress = Progress(total, label="backup", stream=stream, listener=listener)
        topics = await _dump_topics(settings, directory, offsets, progress.advance)
        copied = await content.dump(db, directory, progress)
        kept = await documents.dump(db, directory)
    finally:
        await client.close()
    progress.finish()
    document = {
        "format": manifest.FORMAT,
        "createdAt": created_at,
        "source": {"topicPrefix": settings.topic_prefix, "appId": settings.app_id,
                   "database": settings.mongo_database},
        "topics": topics,
        "content": copied,
        "mongo": kept,
        "sha256": _checksums(directory),
    }
    manifest.write(directory, document)
    return document


async def _dump_topics(settings: Settings, directory: Path, offsets: Offsets,
                       advance: Callable[[int, str], None]) -> dict[str, Any]:
    topics: dict[str, Any] = {}
    consumer = _consumer(settings)
    await consumer.start()
    try:
        for tp, (start, end) in offsets.items():
            relative = f"{TOPICS}/{tp.topic}/{tp.partition}.jsonl.gz"
            path = directory / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            count = await _dump_partition(consumer, tp, start, end, path,
                                          functools.partial(_advance, advance,
                                                            f"{tp.topic}[{tp.partition}]"))
            entry = topics.setdefault(tp.topic, {"partitions": {}})
            entry["partitions"][str(tp.partition)] = {
                "start": start, "end": end, "records": count, "file": relative}
    finally:
        await consumer.stop()
    return topics


def _advance(advance: Callable[[int, str], None], what: str, count: int) -> None:
    advance(count, what)


async def _dump_partition(consumer: AIOKafkaConsumer, tp: TopicPartition, start: int, end: int,
                          path: Path, advance: Callable[[int], None]) -> int:
    """Records ``start`` to ``end`` of ``tp`` into ``path``; returns how many there were.

    Fewer than ``end - start`` when offsets have gaps (compaction, transaction markers).
    """
    count = 0
    with gzip.open(path, "wb") as sink:
        if start >= end:
            return 0
        consumer.assign([tp])
        consumer.seek(tp, start)
        stalled = 0
        position = start
        while position < end:
            batch = await consumer.getmany(tp, timeout_ms=FETCH_MS)
            messages = batch.get(tp, [])
            for message in messages:
                if message.offset >= end:
                    break
                sink.write(Record.of(message).line())
                count += 1
            before, position = position, await consumer.position(tp)
            advance(min(position, end) - before)
            stalled = 0 if position > before else stalled + 1
            if stalled >= STALLED_FETCHES:
                raise BackupError(
                    f"{tp.topic}[{tp.partition}] stopped at offset {position} short of {end}: "
                    "is the broker up? The directory has no manifest (an unfinished backup): "
                    "delete it and start again")
    return count
