"""``mercato dlq list`` / ``mercato dlq redrive ID``: the admin API's dead letters, from a shell.

Both read the dead letters read model directly and re-drive through the same protocol as
``POST /v1/admin/dead-letters/{id}/redrive`` (``gateway.deadletters.redrive``).
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaProducer

from config import Settings
from gateway.deadletters.redrive import redrive
from stores.deadletters import DeadLetterRepository
from stores.mongo import database, mongo_client
from streams.errors import MercatoError

COLUMNS = ("deadLetterId", "failedAt", "agent", "topic", "partition", "offset", "redrivenAt",
           "error")


@asynccontextmanager
async def _letters(settings: Settings) -> AsyncIterator[DeadLetterRepository]:
    client = mongo_client(settings, app_name=f"{settings.app_id}-dlq-cli")
    try:
        yield DeadLetterRepository(database(client, settings))
    finally:
        await client.close()


async def list_letters(
    settings: Settings, *, topic: str | None, agent: str | None, limit: int
) -> int:
    """Print the newest ``limit`` dead letters, one tab-separated line each, with a header."""
    async with _letters(settings) as letters:
        rows = await letters.page(topic=topic, agent=agent, limit=limit)
    sys.stdout.write("\t".join(COLUMNS) + "\n")
    for letter in rows:
        shown = letter.to_json()
        sys.stdout.write("\t".join("" if shown[c] is None else str(shown[c]) for c in COLUMNS)
                         + "\n")
    return 0


async def redrive_letter(settings: Settings, letter_id: str) -> int:
    """Re-drive ``letter_id``; prints where its record went, or why not (exit code 1)."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all",
                                enable_idempotence=settings.kafka_idempotent)
    async with _letters(settings) as letters:
        await producer.start()
        try:
            done = await redrive(letters, producer, letter_id, by=f"cli:{getpass.getuser()}")
        except MercatoError as exc:
            sys.stderr.write(f"mercato: {exc.detail} ({exc.code})\n")
            return 1
        finally:
            await producer.stop()
    sys.stdout.write(f"re-driven {letter_id} to {done.letter.topic}[{done.partition}]"
                     f"@{done.offset}\n")
    return 0
