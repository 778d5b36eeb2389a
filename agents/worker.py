"""``mercato worker``: run the Faust worker configured from the environment."""

from __future__ import annotations

import asyncio
import logging

import faust
import uvloop
from aiokafka.errors import KafkaError

from agents.app import create_worker_app
from agents.runtime.changelogs import (
    drained,
    mark_clean_exit,
    previous_run_crashed,
    repair_of,
)
from config import Settings
from gateway.http.logs import setup_logging
from streams.kafka_compat import apply_empty_fetch_backoff
from streams.membership import next_client_id, release_previous

log = logging.getLogger("mercato.worker")
# Bounded: a broker that is not up yet is Faust's to wait for, after this attempt.
RELEASE_TIMEOUT = 15.0


def _release(loop: asyncio.AbstractEventLoop, settings: Settings, previous: str) -> None:
    """Give up a crashed predecessor's group membership before joining (streams.membership)."""
    try:
        loop.run_until_complete(
            asyncio.wait_for(release_previous(settings, previous), RELEASE_TIMEOUT)
        )
    except (KafkaError, OSError, RuntimeError, TimeoutError) as exc:
        # Not fatal: the broker evicts the dead member once its session times out (Kafka).
        log.warning("could not release the previous worker's membership: %r", exc)


def run(settings: Settings) -> None:
    """Start the worker and block until it is stopped (SIGINT/SIGTERM)."""
    setup_logging(settings.log_level, json_lines=settings.log_json)
    apply_empty_fetch_backoff(
        settings.kafka_empty_fetch_backoff_ms,
        idle_milliseconds=settings.kafka_idle_fetch_backoff_ms,
        interval_milliseconds=settings.kafka_fetch_interval_ms,
    )
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    client_id, previous = next_client_id(settings.data_dir, settings.app_id)
    if previous is not None:
        _release(loop, settings, previous)
    crashed = previous_run_crashed(settings.data_dir)
    if crashed:
        log.warning("the previous worker of this data dir did not exit cleanly: its tables' "
                    "local partitions are sent to their changelogs again once recovered")
    worker_app = create_worker_app(settings, client_id=client_id, repair_changelogs=crashed)
    log.info("starting worker", extra={"settings": settings.safe_dict()})
    worker = faust.Worker(
        worker_app.app,
        loop=loop,
        loglevel=settings.log_level,
        override_logging=False,
        quiet=True,
    )
    # Faust's progress spinner is for a terminal, yet its finish() writes backspaces and a
    # "show cursor" escape code whatever stdout is: into worker.log, under `mercato dev`.
    # Our output is logs (a file or a collector), never a terminal to animate.
    worker.spinner = None
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        # Clean only if every table change went out (Faust's stop can return with some still
        # buffered) and, after a crash, the changelogs were repaired (agents.runtime.changelogs).
        repair = repair_of(worker_app.app)
        if exc.code in (None, 0) and drained(worker_app.app) and (repair is None or repair.ran):
            mark_clean_exit(settings.data_dir)
        raise
