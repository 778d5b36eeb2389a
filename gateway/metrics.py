"""Prometheus metrics, one registry per application (so test apps never collide)."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from gateway import keys


class Metrics:
    """The gateway's instruments."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "mercato_http_requests_total",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "mercato_http_request_duration_seconds",
            "HTTP request latency by route",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
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
        # labels() hashes and locks on every call; the few label sets in use are kept here.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self.push_evicted = Gauge(
            "mercato_push_evicted_total",
            "Connections evicted for being too slow",
            registry=self.registry,
        )


    def children(self, method: str, route: str, status: int) -> tuple[Any, Any]:
        """The request counter and latency histogram for one (method, route, status)."""
        key = (method, route, status)
        found = self._children.get(key)
        if found is None:
            found = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
            self._children[key] = found
        return found


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count and time every request by its route template (not its raw path)."""
    started = time.perf_counter()
    response = await handler(request)
    metrics = request.app[keys.METRICS]
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    counter, histogram = metrics.children(request.method, route, response.status)
    counter.inc()
    histogram.observe(time.perf_counter() - started)
    return response


async def metrics_handler(request: web.Request) -> web.Response:
    """GET /metrics in the Prometheus text format."""
    metrics = request.app[keys.METRICS]
    hub = request.app.get(keys.PUSH_HUB)
    if hub is not None:
        stats = hub.stats()
        metrics.push_connections.set(stats.get("connections", 0))
        metrics.push_delivered.set(stats.get("delivered", 0))
        metrics.push_evicted.set(stats.get("evicted", 0))
    body = generate_latest(metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})
