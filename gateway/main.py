"""``mercato gateway``: serve the API configured from the environment."""

from __future__ import annotations

import logging

import uvloop
from aiohttp import web

from config import Settings
from gateway.app import create_app
from gateway.logs import setup_logging
from streams.kafka_compat import apply_empty_fetch_backoff

log = logging.getLogger("mercato.gateway")


def run(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM, then close connections and resources cleanly."""
    setup_logging(settings.log_level, json_lines=settings.log_json)
    apply_empty_fetch_backoff(
        settings.kafka_empty_fetch_backoff_ms,
        idle_milliseconds=settings.kafka_idle_fetch_backoff_ms,
    )
    log.info("starting gateway", extra={"settings": settings.safe_dict()})
    web.run_app(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        access_log=None,
        print=None,
        shutdown_timeout=10,
        loop=uvloop.new_event_loop(),
    )
