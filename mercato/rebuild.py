"""``mercato rebuild read-models``: drop the MongoDB projections and replay the topics into them.

The replay is the worker itself, not a second copy of the projection code: with the
workers stopped, the projections are dropped, the worker group's offsets go back to the
start of every partition it reads, and one worker is run until it has caught up. Each
agent then sees every record again; its table (local, or recovered from the changelog)
holds the decision it took the first time, so it repeats the same effects with the same
ids, times and values (``agents.runtime.decisions``) and the projections come out as they
were. That is the same path a restored stack takes (``mercato.backups.restore``).

What this costs and where it stops is in docs/operations.md: the read models are empty
until the worker has caught up (API reads see them fill); the repeated events are sent
again with their original ids (consumers dedupe by id); a command whose decision was
trimmed from its aggregate's ledger (``keep``) is past its deadline and expires instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TextIO

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import OffsetAndMetadata
from pymongo.asynchronous.database import AsyncDatabase

from config import Settings
from mercato.backups.errors import BackupError
from mercato.backups.progress import Progress
from mercato.backups.topics import partition_offsets
from stores import (
    analytics,
    audit,
    file_usage,
    files,
    groups,
    notifications,
    orders,
    products,
    reviews,
    stock,
    suggestions,
    users,
)
from stores.mongo import database, mongo_client

# Projections of topics: dropped and rebuilt.
READ_MODELS: tuple[str, ...] = (
    users.COLLECTION, products.COLLECTION, reviews.COLLECTION, stock.COLLECTION,
    orders.COLLECTION, notifications.COLLECTION, audit.COLLECTION, files.COLLECTION,
    files.GRANTS, files.GROUP_GRANTS, file_usage.COLLECTION, groups.COLLECTION,
    analytics.WINDOWS, analytics.SNAPSHOTS, suggestions.COLLECTION, suggestions.POPULARITY,
)
# Kept as they are, each for its reason: what no topic holds, or what stops a replay from
# repeating an effect outside the stack.
KEPT: dict[str, str] = {
    "fs.files": "file content, written by the gateway (a backup copies it)",
    "fs.chunks": "file content, written by the gateway (a backup copies it)",
    "maintenance": "the orphan sweep's progress, not a projection",
    "dead_letters": "re-drive claims are written by the gateway, never on a topic",
    "webhooks": "endpoints are written by the gateway, never on a topic",
    "webhook_deliveries": "the delivery log the webhooks agent checks before it delivers: "
                          "dropped, a replay would call every endpoint again",
}
POLL = 0.5
# How long a caught-up replay may take to fill the projections written on timers.
FILL = 30.0


class WorkerRunning(BackupError):
    """The worker group has members: a rebuild needs the workers stopped."""


async def _group(settings: Settings) -> tuple[str, int, dict[TopicPartition, int]]:
    """The worker group's state, member count and committed offsets."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap,
                                client_id=f"{settings.app_id}-rebuild")
    await admin.start()
    try:
        described = await admin.describe_consumer_groups([settings.app_id])
        group = described[0].groups[0] if described and described[0].groups else None
        state, members = ("Dead", 0) if group is None else (group[2], len(group[5]))
        committed = await admin.list_consumer_group_offsets(settings.app_id)
    finally:
        await admin.close()
    return state, members, {tp: meta.offset for tp, meta in committed.items() if meta.offset >= 0}


async def _starts(settings: Settings, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    bounds = await partition_offsets(settings, tps, client="rebuild")
    return {tp: start for tp, (start, _) in bounds.items()}


async def _ends(settings: Settings, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    bounds = await partition_offsets(settings, tps, client="rebuild")
    return {tp: end for tp, (_, end) in bounds.items()}


async def _rewind(settings: Settings, starts: dict[TopicPartition, int]) -> None:
    """Commit every partition's start offset for the (empty) worker group."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap,
                                group_id=settings.app_id, enable_auto_commit=False,
                                client_id=f"{settings.app_id}-rebuild")
    await consumer.start()
    try:
        consumer.assign(list(starts))
        await consumer.commit({tp: OffsetAndMetadata(offset, "") for tp, offset in starts.items()})
    finally:
        await consumer.stop()


@contextlib.asynccontextmanager
async def _worker(settings: Settings, log: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """``mercato worker`` for ``settings`` as a child process, stopped (SIGTERM) on exit."""
    env = {**_inherited(), **settings.to_env()}
    with log.open("ab") as sink:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mercato", "worker", env=env, stdout=sink,
            stderr=asyncio.subprocess.STDOUT)
        try:
            yield proc
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 30)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


def _inherited() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MERCATO_")}


async def rebuild_read_models(settings: Settings, *, stream: TextIO | None = None,
                              within: float = 600.0) -> dict[str, int]:
    """Drop every projection in :data:`READ_MODELS` and replay the topics into them.

    Returns the rebuilt collections' document counts. Refuses (WorkerRunning) while any
    worker of the group runs: two writers of one projection would race the replay.
    """
    state, members, committed = await _group(settings)
    if members:
        raise WorkerRunning(f"{members} worker(s) of group {settings.app_id} are running "
                            f"(state {state}): stop every `mercato worker` first; this "
                            "command runs its own until the read models are rebuilt")
    if not committed:
        raise BackupError(f"the worker group {settings.app_id} has read nothing yet: "
                          "there is nothing to replay")
    starts = await _starts(settings, sorted(committed))
    client = mongo_client(settings, app_name=f"{settings.app_id}-rebuild")
    try:
        db = database(client, settings)
        # Rewound first: once the offsets are back at the start, any worker replays, so a
        # rebuild stopped after this point is finished by running it again or by starting
        # the workers; dropped first, a failed rewind would leave empty read models for good.
        before = await _counts(db)
        await _rewind(settings, starts)
        for name in READ_MODELS:
            await db[name].drop()
        return await _replay(settings, sorted(committed), stream, within,
                             filled=lambda: _filled(db, before))
    finally:
        await client.close()


async def _replay(settings: Settings, tps: list[TopicPartition], stream: TextIO | None,
                  within: float, *,
                  filled: Callable[[], Awaitable[dict[str, int]]]) -> dict[str, int]:
    """Run a worker until its group has committed every record there was when it started,
    then every record there was when it got there (what its repeated sends added), and
    until ``filled`` returns the rebuilt counts.

    A fixed end, not "no lag": the analytics timer adds a tick to its topic every second,
    so a partition may stay one record behind for good.
    """
    log = settings.data_dir / "rebuild-worker.log"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + within
    target = await _ends(settings, tps)
    progress = Progress(sum(target.values()), label="rebuild", stream=stream)
    rounds = 0
    async with _worker(settings, log) as proc:
        while rounds < 2:
            await asyncio.sleep(POLL)
            if proc.returncode is not None:
                raise BackupError(f"the replaying worker exited ({proc.returncode}); see {log}")
            _, _, committed = await _group(settings)
            behind = {tp: end for tp, end in target.items() if committed.get(tp, 0) < end}
            if time.monotonic() > deadline:
                lagging = ", ".join(f"{tp.topic}[{tp.partition}] at {committed.get(tp, 0)}/{end}"
                                    for tp, end in behind.items())
                raise BackupError(f"the replay did not catch up in {within:g}s ({lagging}); "
                                  f"see {log}")
            done = sum(min(committed.get(tp, 0), end) for tp, end in target.items())
            progress.advance(done - progress.done, "replaying")
            if not behind:
                rounds += 1
                target = await _ends(settings, tps)
                progress.total = sum(target.values())
        counts = await filled()  # the worker still running: its timers write some of them
    progress.finish()
    return counts


async def _counts(db: AsyncDatabase[dict[str, Any]]) -> dict[str, int]:
    return {name: await db[name].count_documents({}) for name in READ_MODELS}


async def _filled(db: AsyncDatabase[dict[str, Any]], before: dict[str, int]) -> dict[str, int]:
    """The rebuilt counts, once every collection is back to its count (or ``FILL`` passed).

    Caught up is not quite done: some projections are written on a timer from what the
    replay put in the tables (the analytics dashboard snapshots, each second). A count
    that stays short is reported as it is: records past retention, or trimmed decisions.
    """
    deadline = time.monotonic() + FILL
    while True:
        counts = await _counts(db)
        if all(counts[n] >= before[n] for n in READ_MODELS) or time.monotonic() > deadline:
            return counts
        await asyncio.sleep(POLL)


def summary_lines(counts: dict[str, Any]) -> list[str]:
    """One line per rebuilt collection, for the command's output."""
    width = max(len(name) for name in counts)
    return [f"{name:<{width}}  {count}" for name, count in counts.items()]
