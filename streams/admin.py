"""Explicit, idempotent topic creation from the catalogue."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from config import Settings
from streams.topics import CATALOGUE, TopicSpec, partitions

log = logging.getLogger(__name__)
TOPIC_ALREADY_EXISTS = TopicAlreadyExistsError.errno


class TopicMismatch(RuntimeError):
    """An existing topic has fewer partitions than the catalogue asks for."""


async def ensure_topics(
    settings: Settings, specs: Iterable[TopicSpec] = CATALOGUE
) -> dict[str, str]:
    """Create every missing topic; report ``{name: "created"|"exists"}``.

    Existing topics are checked: a partition count that differs from the
    catalogue would break Faust tables (PartitionsMismatch), so it is an error.
    """
    specs = list(specs)
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, client_id=f"{settings.app_id}-admin"
    )
    await admin.start()
    try:
        response = await admin.create_topics(
            [
                NewTopic(
                    settings.topic(s.name),
                    partitions(settings, s.name),
                    settings.kafka_replication,
                    topic_configs=s.configs(),
                )
                for s in specs
            ]
        )
        result: dict[str, str] = {}
        for topic, code, message in response.topic_errors:
            if code == 0:
                result[topic] = "created"
            elif code == TOPIC_ALREADY_EXISTS:
                result[topic] = "exists"
            else:
                raise RuntimeError(f"creating topic {topic} failed: error {code} {message}")
        existing = await admin.describe_topics([settings.topic(s.name) for s in specs])
        counts = {t["topic"]: len(t["partitions"]) for t in existing}
        for s in specs:
            have = counts.get(settings.topic(s.name))
            if have is not None and have != partitions(settings, s.name):
                raise TopicMismatch(
                    f"topic {settings.topic(s.name)} has {have} partitions, the catalogue says "
                    f"{partitions(settings, s.name)}; recreate it or change streams/topics.py"
                )
        log.info("topics ready", extra={"topics": result})
        return result
    finally:
        await admin.close()
