"""Request counts and latencies kept as plain numbers, exported when Prometheus scrapes.

``prometheus_client``'s labelled Counter and Histogram take a lock and walk the bucket
list on every call (~5 µs per request here). The gateway records on its one event-loop
thread, so a row of plain numbers per (method, route, status) is enough; ``collect``
turns the rows into the same two metric families at scrape time.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS: tuple[float, ...] = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class _Row:
    """One (method, route, status): a count, a latency sum and per-bucket counts."""

    __slots__ = ("buckets", "count", "total")

    def __init__(self, size: int) -> None:
        self.count = 0
        self.total = 0.0
        self.buckets = [0] * size  # the last one is +Inf


class RequestStats(Collector):
    """``mercato_http_requests_total`` and ``mercato_http_request_duration_seconds``."""

    def __init__(self, bounds: Sequence[float] = LATENCY_BUCKETS) -> None:
        self._bounds = tuple(bounds)
        # Keyed by the route's resource, which lives as long as the app; requests that
        # matched no route (404, 405) share the None resource. Methods come from a fixed set,
        # so neither a scan of random paths nor of made-up methods can grow this table.
        self._rows: dict[tuple[web.AbstractResource | None, str, int], tuple[str, str, _Row]] = {}

    def observe(self, request: web.Request, status: int, seconds: float) -> None:
        """Count and time one request by its route template (not its raw path)."""
        resource = request.match_info.route.resource
        method = request.method
        key = (resource, method, status)
        found = self._rows.get(key)
        if found is None and method not in METHODS:
            method = "OTHER"
            key = (resource, method, status)
            found = self._rows.get(key)
        if found is None:
            template = resource.canonical if resource is not None else "unmatched"
            found = self._rows[key] = (template, method, _Row(len(self._bounds) + 1))
        row = found[2]
        row.count += 1
        row.total += seconds
        row.buckets[bisect.bisect_left(self._bounds, seconds)] += 1

    def collect(self) -> Iterator[Metric]:
        """The two families, summed over routes that share a template and status."""
        requests = CounterMetricFamily(
            "mercato_http_requests", "HTTP requests by route and status",
            labels=["method", "route", "status"],
        )
        latency = HistogramMetricFamily(
            "mercato_http_request_duration_seconds", "HTTP request latency by route",
            labels=["method", "route"],
        )
        counts: dict[tuple[str, str, str], int] = {}
        histograms: dict[tuple[str, str], tuple[list[int], list[float]]] = {}
        for (_resource, method, status), (template, _m, row) in list(self._rows.items()):
            labels = (method, template, str(status))
            counts[labels] = counts.get(labels, 0) + row.count
            buckets, total = histograms.setdefault(
                (method, template), ([0] * len(row.buckets), [0.0])
            )
            for i, n in enumerate(row.buckets):
                buckets[i] += n
            total[0] += row.total
        for labels, count in counts.items():
            requests.add_metric(list(labels), count)
        for (method, template), (buckets, total) in histograms.items():
            cumulative, running = [], 0
            for bound, n in zip((*map(_le, self._bounds), "+Inf"), buckets, strict=True):
                running += n
                cumulative.append((bound, running))
            latency.add_metric([method, template], cumulative, total[0])
        yield requests
        yield latency


def _le(bound: float) -> str:
    return repr(float(bound))
