"""Which requests are limited, by which bucket: the one table of route classes and limits."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping

from multidict import CIMultiDict, CIMultiDictProxy

from config.settings import ConfigError

# A lease never holds more than this many tokens of one bucket on one instance (see limiter).
LEASE_MAX = 1024
# ... nor more than this share of the bucket, so small buckets stay nearly exact.
LEASE_SHARE = 8


@dataclasses.dataclass(frozen=True, slots=True)
class Policy:
    """A token bucket: ``burst`` tokens, refilled at ``quota`` per ``window`` seconds."""

    name: str
    quota: int
    window: int
    burst: int
    # Every request takes its token in Redis (no local lease): for low-rate, strict classes.
    exact: bool = False
    # Keyed by client IP even when a valid token names a user (credential stuffing).
    per_ip: bool = False
    # RateLimit-Policy and X-RateLimit-Limit: the same on every response, so built once.
    header_block: CIMultiDictProxy[str] = dataclasses.field(
        init=False, repr=False, compare=False
    )
    # The most tokens one instance may hold locally for one client (1 = no lease).
    lease_max: int = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        block = CIMultiDict(
            [("RateLimit-Policy", self.policy_header), ("X-RateLimit-Limit", str(self.quota))]
        )
        object.__setattr__(self, "header_block", CIMultiDictProxy(block))
        lease_max = 1 if self.exact else max(1, min(LEASE_MAX, self.burst // LEASE_SHARE))
        object.__setattr__(self, "lease_max", lease_max)

    @property
    def rate(self) -> float:
        """Tokens added per second."""
        return self.quota / self.window

    @property
    def policy_header(self) -> str:
        """This policy as a ``RateLimit-Policy`` item (draft-ietf-httpapi-ratelimit-headers)."""
        return f'"{self.name}";q={self.quota};w={self.window}'

    def seconds_to_full(self, tokens: float) -> int:
        """Whole seconds until a bucket holding ``tokens`` is full again."""
        return max(0, math.ceil((self.burst - tokens) / self.rate))


# The one table. Health, metrics, docs and OPTIONS preflights are exempt (see ``classify``).
POLICIES: Mapping[str, Policy] = {
    "auth": Policy("auth", quota=10, window=60, burst=5, exact=True, per_ip=True),
    "write": Policy("write", quota=120, window=60, burst=30),
    "read": Policy("read", quota=600, window=60, burst=100),
    "stream": Policy("stream", quota=30, window=60, burst=10),
    # Client analytics (POST /v1/analytics/events): a bucket of its own, so a busy page's
    # views never spend the budget its orders and uploads need. A request costs one token
    # per event, so the burst holds one full batch (100 events).
    "events": Policy("events", quota=300, window=60, burst=100),
}

EXEMPT_PREFIXES = ("/health/", "/metrics", "/docs", "/openapi.json", "/asyncapi.json",
                   "/schemas/", "/dashboard", "/favicon.ico", "/.well-known/")
STREAM_PATHS = frozenset({"/v1/ws", "/v1/events"})
AUTH_PREFIX = "/v1/auth/"
EVENTS_PATH = "/v1/analytics/events"
_OVERRIDE = re.compile(r"^(?P<name>[a-z]+)=(?P<quota>\d+)/(?P<window>\d+)(?::(?P<burst>\d+))?$")


def with_overrides(spec: str, base: Mapping[str, Policy] = POLICIES) -> dict[str, Policy]:
    """``base`` with ``MERCATO_RATE_LIMITS`` entries (``read=600/60:100``) applied."""
    policies = dict(base)
    for item in filter(None, (part.strip() for part in spec.split(","))):
        match = _OVERRIDE.match(item)
        if match is None or match["name"] not in policies:
            raise ConfigError(
                f"MERCATO_RATE_LIMITS entry {item!r} must look like 'read=600/60:100' "
                f"(class=quota/window-seconds[:burst]) with a class among {sorted(policies)}"
            )
        quota, window = int(match["quota"]), int(match["window"])
        burst = int(match["burst"]) if match["burst"] else quota
        if quota < 1 or window < 1 or burst < 1:
            raise ConfigError(f"MERCATO_RATE_LIMITS entry {item!r}: numbers must be positive")
        policies[match["name"]] = dataclasses.replace(
            policies[match["name"]], quota=quota, window=window, burst=burst
        )
    return policies


def classify(method: str, path: str, policies: Mapping[str, Policy]) -> Policy | None:
    """The policy limiting ``method path``, or None when the route is exempt."""
    if method == "OPTIONS" or path.startswith(EXEMPT_PREFIXES):
        return None
    if method == "GET" or method == "HEAD":
        return policies["stream"] if path in STREAM_PATHS else policies["read"]
    if method == "POST" and path.startswith(AUTH_PREFIX):
        return policies["auth"]
    if method == "POST" and path == EVENTS_PATH:
        return policies["events"]
    return policies["write"]
