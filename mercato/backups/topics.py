"""Which of the broker's topics belong to a stack, and how a restore creates them again."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition

from config import Settings
from streams.topics import BY_NAME

CHANGELOG_SUFFIX = "-changelog"

Offsets = dict[TopicPartition, tuple[int, int]]


async def partition_offsets(settings: Settings, partitions: list[TopicPartition], *,
                  client: str) -> Offsets:
    """``(start, end)`` offset of every partition of ``partitions``, read now, in order.

    The backup, the restore's emptiness check and the rebuild all need them; ``client``
    names who asks (in the broker's client id).
    """
    if not partitions:
        return {}
    # No group: nothing is assigned or committed, only offsets are asked for.
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None,
                                enable_auto_commit=False,
                                client_id=f"{settings.app_id}-{client}")
    await consumer.start()
    try:
        starts = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return {tp: (starts[tp], ends[tp]) for tp in sorted(partitions)}


def belongs(settings: Settings, topic: str) -> bool:
    """Whether ``topic`` is this stack's: a catalogue topic or one of Faust's.

    A catalogue topic is the prefix and a catalogue name, so another stack whose prefix
    extends this one (``mercato.`` and ``mercato.p64.``) is left out. Faust names its own
    topics after the app id: the tables' changelogs (``<app_id>-<table>-changelog``) and
    the assignor's leader topic. The changelogs hold the worker's tables, so a backup
    without them would restore the log but not the state; they are matched by the app id
    alone, so that a table added later is never left out.
    """
    if topic.startswith(settings.topic_prefix):
        return topic[len(settings.topic_prefix):] in BY_NAME
    return topic.startswith(f"{settings.app_id}-")


def renamed(topic: str, *, source: dict[str, str], target: Settings) -> str:
    """The name ``topic`` of the backed-up stack ``source`` takes in the stack ``target``."""
    if topic.startswith(source["topicPrefix"]):
        return target.topic_prefix + topic[len(source["topicPrefix"]):]
    return f"{target.app_id}-" + topic[len(source["appId"]) + 1:]


def configs(settings: Settings, topic: str) -> dict[str, str]:
    """The configs to create ``topic`` (a name in the stack ``settings``) with."""
    if topic.startswith(settings.topic_prefix):
        spec = BY_NAME.get(topic[len(settings.topic_prefix):])
        if spec is not None:
            return spec.configs()
    if topic.endswith(CHANGELOG_SUFFIX):
        # As Faust creates them: a table's changelog keeps the last value of every key.
        return {"cleanup.policy": "compact"}
    return {}
