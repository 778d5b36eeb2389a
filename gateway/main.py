"""``mercato gateway``: serve the API configured from the environment."""

from __future__ import annotations

import asyncio
import logging
import signal

import uvloop
from aiohttp import web

from config import Settings
from gateway.app import create_app
from gateway.http.logs import setup_logging
from gateway.http.serving import GatewayRunner
from streams.kafka_compat import apply_empty_fetch_backoff

log = logging.getLogger("mercato.gateway")
# What web.run_app used: idle keep-alive connections close after this many seconds.
KEEPALIVE_TIMEOUT = 75.0
SHUTDOWN_TIMEOUT = 10.0


def run(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM, then close connections and resources cleanly."""
    setup_logging(settings.log_level, json_lines=settings.log_json)
    apply_empty_fetch_backoff(
        settings.kafka_empty_fetch_backoff_ms,
        idle_milliseconds=settings.kafka_idle_fetch_backoff_ms,
        interval_milliseconds=settings.kafka_fetch_interval_ms,
    )
    log.info("starting gateway", extra={"settings": settings.safe_dict()})
    uvloop.run(serve(create_app(settings), settings))


async def serve(app: web.Application, settings: Settings) -> None:
    """Run ``app`` on the configured address until a stop signal (gateway.http.serving)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner = GatewayRunner(
        app, header_timeout=settings.http_header_timeout, access_log=None,
        keepalive_timeout=KEEPALIVE_TIMEOUT, shutdown_timeout=SHUTDOWN_TIMEOUT,
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.http_host, settings.http_port,
                          backlog=settings.http_backlog).start()
        await stop.wait()
        log.info("stopping gateway")
    finally:
        await runner.cleanup()
