"""Where the worker's consumer group stands on its topics: committed offsets and lag.

A chaos test kills the worker "with records in flight": records on its topics that the
group has not committed yet, so they are delivered again to the next worker.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from config import Settings


async def group_position(settings: Settings, topics: Iterable[str]) -> tuple[int, int]:
    """(offsets committed, records not committed yet) summed over ``topics`` (catalogue names)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    await consumer.start()
    try:
        await consumer.topics()
        assigned = [TopicPartition(settings.topic(t), p) for t in topics
                    for p in sorted(consumer.partitions_for_topic(settings.topic(t)) or ())]
        ends = await consumer.end_offsets(assigned)
        offsets = await admin.list_consumer_group_offsets(settings.app_id)
        done = {tp: offsets[tp].offset if tp in offsets and offsets[tp].offset >= 0 else 0
                for tp in assigned}
        return sum(done.values()), sum(ends[tp] - done[tp] for tp in assigned)
    finally:
        await consumer.stop()
        await admin.close()
