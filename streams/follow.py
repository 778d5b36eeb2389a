"""Consumers that read a whole topic without a group (gateways' and flag books' followers).

Every gateway reads all of ``push`` and ``replies``, and every process all of ``config``:
no consumer group, every partition assigned by hand, positions kept by the reader.
"""

from __future__ import annotations

from typing import Any

from aiokafka import TopicPartition


async def assign_whole_topic(consumer: Any, topic: str) -> list[TopicPartition]:
    """Assign every partition of ``topic`` to a started ``consumer``; they are returned.

    ``RuntimeError`` (the process cannot work without it) when the topic does not exist.
    """
    await consumer.topics()  # refreshes metadata for every topic
    found = consumer.partitions_for_topic(topic)
    if not found:
        raise RuntimeError(f"topic {topic!r} does not exist; run `mercato topics create`")
    partitions = [TopicPartition(topic, p) for p in sorted(found)]
    consumer.assign(partitions)
    return partitions
