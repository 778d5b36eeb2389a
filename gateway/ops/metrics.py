"""Prometheus metrics, one registry per application (so test apps never collide)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from gateway import keys
from gateway.http.request_stats import RequestStats
from gateway.push.keys import PUSH_HUB


class Metrics:
    """The gateway's instruments."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.http = RequestStats()
        # Run before each scrape by the domains whose figures live elsewhere (MongoDB).
        self.refreshers: list[Callable[[], Awaitable[None]]] = []
        self.registry.register(self.http)
        self.commands = Counter(
            "mercato_commands_total",
            "Commands sent to agents by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.push_connections = Gauge(
            "mercato_push_connections",
            "Open WebSocket and SSE connections",
            registry=self.registry,
        )
        self.push_delivered = Gauge(
            "mercato_push_delivered_total",
            "Push events queued to connections",
            registry=self.registry,
        )
        self.push_evicted = Gauge(
            "mercato_push_evicted_total",
            "Connections evicted for being too slow",
            registry=self.registry,
        )
        self.push_replay_requests = Gauge(
            "mercato_push_replay_requests_total",
            "Resuming streams' requests for missed events",
            registry=self.registry,
        )
        self.push_replay_passes = Gauge(
            "mercato_push_replay_passes_total",
            "Reads of a push partition that served those requests (shared by concurrent ones)",
            registry=self.registry,
        )
        self.push_writes = Gauge(
            "mercato_push_writes_total",
            "Socket writes of push frames (several frames for one client share one write)",
            registry=self.registry,
        )


async def metrics_handler(request: web.Request) -> web.Response:
    """GET /metrics in the Prometheus text format."""
    metrics = request.app[keys.METRICS]
    hub = request.app.get(PUSH_HUB)
    if hub is not None:
        stats = hub.stats()
        metrics.push_connections.set(stats.get("connections", 0))
        metrics.push_delivered.set(stats.get("delivered", 0))
        metrics.push_evicted.set(stats.get("evicted", 0))
        metrics.push_replay_requests.set(stats.get("replay_requests", 0))
        metrics.push_replay_passes.set(stats.get("replay_passes", 0))
        metrics.push_writes.set(stats.get("writes", 0))
    for refresh in metrics.refreshers:
        await refresh()
    body = generate_latest(metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})
