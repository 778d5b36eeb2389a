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
    """Existing topics have another partition count than the settings give them."""

    def __init__(self, found: dict[str, tuple[int, int]], *, created: bool = False) -> None:
        self.found = found  # topic -> (partitions it has, partitions the settings give it)
        listed = ", ".join(f"{t} has {have} (wants {want})" for t, (have, want) in found.items())
        counts = sorted({have for have, _ in found.values()})
        keep = " or ".join(map(str, counts))
        done = "The missing topics were created" if created else "Nothing was created"
        super().__init__(
            f"topics have another partition count than MERCATO_TOPIC_PARTITIONS gives them: "
            f"{listed}. {done}.\n"
            "  A key's partition picks the worker that holds its table state, and adding "
            "partitions in place (Kafka can) moves keys away from their state. There is no "
            "supported way to change the count of a deployment that holds data: a backup "
            "restores every record to its partition and refuses another count, and the "
            'reasons are in docs/production.md, "Partitions". So:\n'
            "  - production: keep the count the topics have (below);\n"
            "  - dev: start over (`mercato dev --reset`) or use a new MERCATO_TOPIC_PREFIX "
            "and MERCATO_APP_ID (new, empty topics beside the old ones);\n"
            f"  - to keep these topics: MERCATO_TOPIC_PARTITIONS={keep}."
        )


async def ensure_topics(
    settings: Settings, specs: Iterable[TopicSpec] = CATALOGUE
) -> dict[str, str]:
    """Create every missing topic; report ``{name: "created"|"exists"}``.

    Existing topics are checked first: a partition count that differs from the settings
    would break Faust tables (PartitionsMismatch), so it is refused before anything is
    created, and the deployment is never left with topics of two counts.
    """
    specs = list(specs)
    wanted = {settings.topic(s.name): partitions(settings, s.name) for s in specs}
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, client_id=f"{settings.app_id}-admin"
    )
    await admin.start()
    try:
        await _refuse_mismatches(admin, wanted)
        response = await admin.create_topics(
            [
                NewTopic(
                    settings.topic(s.name),
                    wanted[settings.topic(s.name)],
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
        # Again: a topic another client created meanwhile (a producer's auto-create takes
        # the broker's default count) exists with whatever count it was given.
        await _refuse_mismatches(admin, wanted, created=True)
        log.info("topics ready", extra={"topics": result})
        return result
    finally:
        await admin.close()


async def _refuse_mismatches(
    admin: AIOKafkaAdminClient, wanted: dict[str, int], *, created: bool = False
) -> None:
    # Described by name only once listed: a metadata request naming a missing topic makes
    # a broker with auto-create on create it, with its default count.
    existing = [name for name in await admin.list_topics() if name in wanted]
    if not existing:
        return
    counts = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(existing)}
    found = {
        name: (counts[name], wanted[name])
        for name in sorted(counts)
        if counts[name] != wanted[name]
    }
    if found:
        raise TopicMismatch(found, created=created)
