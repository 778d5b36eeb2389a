"""When the analytics agents have applied a burst, to the millisecond: the windows changelog.

*That* every event was applied is known from the dashboards (``bench.analytics``): the
marketplace's and the seller's snapshots count exactly the events sent, which they do
only once every fact of both scopes was applied (each fact is applied once, see
``agents.analytics.windows``). *When* the last one was applied is read from the windows
table's changelog: the decider writes a record's applied ids (``s|{partition}|{offset}``)
just before the partition's meta, after every window, so the newest such record (not a
tombstone) of each changelog partition marks the last facts applied there, and its
timestamp is the moment the worker's producer took it. Ticks, which follow, never write
such marks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from agents.analytics.install import WINDOWS_TABLE
from bench.common import BenchError
from config import Settings

POLL = 0.2
TAIL = 400  # records read back from a changelog partition's end per step


def changelog_topic(settings: Settings) -> str:
    """Faust's name for the windows table's changelog (``{app id}-{table}-changelog``)."""
    return f"{settings.app_id}-{WINDOWS_TABLE}-changelog"


class GroupOffsets:
    """End offsets of topics and the worker group's committed offsets on them."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap,
                                          enable_auto_commit=False)
        self._admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        # Changelog records read by ``last_mark_ms``, by key kind (``w``, ``v``, ``s``...):
        # [records, value bytes]; the tail of a burst, a sample of what it wrote.
        self.tail_sizes: dict[str, list[int]] = {}

    async def __aenter__(self) -> GroupOffsets:
        await self._consumer.start()
        await self._admin.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._consumer.stop()
        await self._admin.close()

    async def partitions(self, topic: str) -> list[TopicPartition]:
        """Every partition of ``topic`` (a full name)."""
        await self._consumer.topics()
        found = self._consumer.partitions_for_topic(topic)
        if not found:
            raise BenchError(f"topic {topic} does not exist")
        return [TopicPartition(topic, p) for p in sorted(found)]

    async def ends(self, topics: Iterable[str], *, prefixed: bool = True
                   ) -> dict[TopicPartition, int]:
        """End offsets of every partition of ``topics`` (catalogue names, or full ones)."""
        names = [self._settings.topic(t) if prefixed else t for t in topics]
        parts = [tp for name in names for tp in await self.partitions(name)]
        return dict(await self._consumer.end_offsets(parts))

    async def caught_up(self, targets: dict[TopicPartition, int], *, limit: float,
                        what: str) -> None:
        """Wait until the worker group has committed up to ``targets``.

        At rest the group's committed offset of a partition is its end offset minus one
        (Faust commits the offset of the last record it processed; observed on noida), so
        that is what caught up means here.
        """
        deadline = time.monotonic() + limit
        while True:
            committed = await self._admin.list_consumer_group_offsets(
                self._settings.app_id, partitions=list(targets))
            behind = {tp: end - 1 - (committed[tp].offset if tp in committed else -1)
                      for tp, end in targets.items() if end > 0}
            if all(lag <= 0 for lag in behind.values()):
                return
            if time.monotonic() > deadline:
                left = sum(max(0, lag) for lag in behind.values())
                raise BenchError(f"{what}: the worker is still {left} records behind after "
                                 f"{limit:.0f}s")
            await asyncio.sleep(POLL)

    async def last_mark_ms(self, since: dict[TopicPartition, int]) -> int | None:
        """Timestamp (epoch ms) of the newest applied-fact mark after ``since``, if any."""
        ends = await self._consumer.end_offsets(list(since))
        newest: int | None = None
        for tp, end in ends.items():
            stamp = await self._newest_mark(tp, since[tp], end)
            if stamp is not None and (newest is None or stamp > newest):
                newest = stamp
        return newest

    async def _newest_mark(self, tp: TopicPartition, floor: int, end: int) -> int | None:
        reader = AIOKafkaConsumer(bootstrap_servers=self._settings.kafka_bootstrap,
                                  enable_auto_commit=False)
        await reader.start()
        try:
            reader.assign([tp])
            top = end
            while top > floor:  # newest records first, a tail at a time
                low = max(floor, top - TAIL)
                reader.seek(tp, low)
                stamp: int | None = None
                position = low
                while position < top:
                    batch = await reader.getmany(tp, timeout_ms=2000)
                    records = batch.get(tp, [])
                    if not records:
                        raise BenchError(f"could not read {tp.topic}[{tp.partition}] "
                                         f"at {position}")
                    for record in records:
                        if record.offset >= top:
                            break
                        key = (record.key or b"").decode(errors="replace").strip('"')
                        kind = self.tail_sizes.setdefault(key.split("|", 1)[0], [0, 0])
                        kind[0] += 1
                        kind[1] += len(record.value or b"")
                        if key.startswith("s|") and record.value is not None:
                            stamp = record.timestamp
                    position = records[-1].offset + 1
                if stamp is not None:
                    return stamp
                top = low
            return None
        finally:
            await reader.stop()
