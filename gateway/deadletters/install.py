"""Dead letters as the gateway installs them: the read model, its metrics and the routes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import Gauge
from pymongo.errors import PyMongoError

from gateway import keys
from gateway.deadletters import routes
from gateway.deadletters.keys import DEAD_LETTERS
from gateway.domain import Domain
from stores.deadletters import DeadLetterRepository

log = logging.getLogger(__name__)
# A scrape waits at most this long for the counts (a MongoDB outage must not hang /metrics).
COUNTS_TIMEOUT = 1.0


async def dead_letters_ctx(app: web.Application) -> AsyncIterator[None]:
    """The dead letters read model, and its counts on every scrape of /metrics."""
    letters = app[DEAD_LETTERS] = DeadLetterRepository(app[keys.MONGO_DB])
    metrics = app[keys.METRICS]
    # Read from the shared read model at scrape time: the gateway cannot see the worker's
    # memory, and the projection is what every gateway (and the CLI) lists anyway.
    total = Gauge("mercato_dead_letters_total",
                  "Records set aside on dlq, by the agent that gave up and its source topic",
                  ["agent", "topic"], registry=metrics.registry)
    redriven = Gauge("mercato_dead_letters_redriven_total",
                     "Dead letters re-driven, by agent and source topic",
                     ["agent", "topic"], registry=metrics.registry)

    async def refresh() -> None:
        try:
            counts = await asyncio.wait_for(letters.counts(), COUNTS_TIMEOUT)
        except (PyMongoError, TimeoutError) as exc:
            # /metrics still answers (readiness reports MongoDB); the series keep their
            # last values rather than dropping to zero, which would read as a reset.
            log.warning("dead letter counts unavailable: %r", exc)
            return
        for agent, topic, count, redone in counts:
            total.labels(agent=agent, topic=topic).set(count)
            redriven.labels(agent=agent, topic=topic).set(redone)

    metrics.refreshers.append(refresh)
    yield


DOMAIN = Domain("deadletters", contexts=(dead_letters_ctx,), routes=(routes.routes,))
