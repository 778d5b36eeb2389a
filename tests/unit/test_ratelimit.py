"""The limiter without services: the table, identities, leases, and failing open."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request
from prometheus_client import CollectorRegistry

from config import Settings
from config.settings import ConfigError
from gateway import keys
from gateway.http.ratelimit import (
    POLICIES,
    Policy,
    RateLimiter,
    classify,
    open_rate_limits,
    with_overrides,
)
from gateway.http.ratelimit.buckets import Grant
from gateway.http.ratelimit.identity import ClientIdentity
from gateway.identity.auth import TokenService
from mercato._procs import free_port
from tests.support.edge import edge_app

SECRET = "unit-test-secret-unit-test-secret-unit-test-0000"


class MemoryBuckets:
    """One process's stand-in for the Redis buckets: no refill, counts round trips."""

    def __init__(self, *, deferred: bool = True) -> None:
        self.tokens: dict[str, int] = {}
        self.calls = 0
        self.deferred = deferred

    def take(self, key: str, policy: Policy, want: int) -> asyncio.Future[Grant]:
        self.calls += 1
        have = self.tokens.setdefault(key, policy.burst)
        granted = min(want, have)
        self.tokens[key] = have - granted
        future: asyncio.Future[Grant] = asyncio.get_running_loop().create_future()
        retry = 0.0 if granted else 1 / policy.rate
        grant = Grant(granted, have - granted, retry, 0.0)
        if self.deferred:  # answered on a later loop turn, like a round trip
            asyncio.get_running_loop().call_soon(future.set_result, grant)
        else:  # already answered, like a cached or failed-open grant
            future.set_result(grant)
        return future


async def decide(limiter: RateLimiter, policy: Policy, key: str = "k") -> bool:
    decision = limiter.decide_now(policy, key) or await limiter.decide(policy, key)
    return decision.allowed


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("POST", "/v1/auth/login", "auth"),
        ("POST", "/v1/auth/password/reset/confirm", "auth"),
        ("GET", "/v1/users/me", "read"),
        ("HEAD", "/v1/users/me", "read"),
        ("PATCH", "/v1/users/me", "write"),
        ("POST", "/v1/stream-tickets", "write"),
        ("GET", "/v1/ws", "stream"),
        ("GET", "/v1/events", "stream"),
        ("GET", "/health/ready", None),
        ("GET", "/metrics", None),
        ("GET", "/docs", None),
        ("GET", "/openapi.json", None),
        ("OPTIONS", "/v1/users/me", None),
    ],
)
def test_every_route_falls_in_one_class(method: str, path: str, expected: str | None) -> None:
    policy = classify(method, path, POLICIES)
    assert (policy.name if policy else None) == expected


def test_overrides_replace_one_class_and_refuse_nonsense() -> None:
    policies = with_overrides("read=1000/60:50, auth=3/60")
    assert (policies["read"].quota, policies["read"].burst) == (1000, 50)
    assert (policies["auth"].quota, policies["auth"].burst) == (3, 3)
    assert policies["auth"].exact
    assert policies["write"] == POLICIES["write"]
    for bad in ("reads=1/60", "read=1", "read=0/60", "read=ten/60"):
        with pytest.raises(ConfigError, match="MERCATO_RATE_LIMITS"):
            with_overrides(bad)


def test_policy_header_follows_the_draft_syntax() -> None:
    assert POLICIES["read"].policy_header == '"read";q=600;w=60'


@pytest.mark.parametrize(
    ("trust", "forwarded", "expected"),
    [
        (False, "203.0.113.9", "ip:127.0.0.1"),
        (True, "203.0.113.9", "ip:203.0.113.9"),
        # Only the entry our proxy appended counts; the client wrote the ones to its left.
        (True, "6.6.6.6, 203.0.113.9", "ip:203.0.113.9"),
        (True, None, "ip:127.0.0.1"),
    ],
)
def test_client_address_trusts_forwarded_only_behind_a_proxy(
    trust: bool, forwarded: str | None, expected: str
) -> None:
    identity = ClientIdentity(trust_proxy=trust)
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    request = make_mocked_request("GET", "/v1/users/me", headers=headers).clone(remote="127.0.0.1")
    assert identity.key(request, POLICIES["read"], None) == expected


def test_verified_callers_name_the_user_except_for_auth_routes() -> None:
    tokens = TokenService(Settings(jwt_secret=SECRET))
    identity = ClientIdentity(trust_proxy=False)
    ada = tokens.verify(tokens.issue_access("ada", ["buyer"]))
    request = make_mocked_request("GET", "/v1/users/me").clone(remote="127.0.0.1")
    assert identity.key(request, POLICIES["read"], (ada, False)) == "u:ada"
    assert identity.key(request, POLICIES["auth"], (ada, False)) == "ip:127.0.0.1"
    # A stream ticket names its user on the push endpoints only.
    assert identity.key(request, POLICIES["stream"], (ada, True)) == "u:ada"
    assert identity.key(request, POLICIES["read"], (ada, True)) == "ip:127.0.0.1"
    # No verified caller (no token, or one that did not verify): the client address.
    assert identity.key(request, POLICIES["read"], None) == "ip:127.0.0.1"


@pytest.mark.parametrize("deferred", [True, False])
async def test_exact_policy_asks_redis_every_time_and_caches_refusals(deferred: bool) -> None:
    buckets = MemoryBuckets(deferred=deferred)
    limiter = RateLimiter(buckets, prefix="t")
    auth = POLICIES["auth"]
    verdicts = [await decide(limiter, auth) for _ in range(auth.burst + 5)]
    assert verdicts == [True] * auth.burst + [False] * 5
    # One call per admitted request plus the refusal; later refusals are decided locally.
    assert buckets.calls == auth.burst + 1


async def test_leases_spare_redis_most_round_trips() -> None:
    buckets = MemoryBuckets()
    limiter = RateLimiter(buckets, prefix="t")
    read = dataclasses.replace(POLICIES["read"], burst=10_000, quota=10_000)
    assert all([await decide(limiter, read) for _ in range(1_000)])
    await asyncio.sleep(0)  # let the last background top-up land
    assert buckets.calls < 1_000 / 20
    assert buckets.tokens["k"] >= 10_000 - 1_000 - read.lease_max


async def test_instances_sharing_a_bucket_stay_within_the_documented_bound() -> None:
    shared = MemoryBuckets()
    policy = dataclasses.replace(POLICIES["read"], burst=200)
    instances = [RateLimiter(shared, prefix="t") for _ in range(3)]
    admitted = 0
    for i in range(400):
        admitted += await decide(instances[i % 3], policy)
    assert policy.burst - 3 * policy.lease_max <= admitted <= policy.burst


async def test_concurrent_requests_share_one_round_trip() -> None:
    buckets = MemoryBuckets()
    limiter = RateLimiter(buckets, prefix="t")
    policy = POLICIES["read"]
    verdicts = await asyncio.gather(*(limiter.decide(policy, "k") for _ in range(8)))
    assert all(v.allowed for v in verdicts)
    assert buckets.calls <= 3


async def test_unreachable_redis_fails_open_with_a_warning_and_a_metric(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings(jwt_secret=SECRET, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    registry = CollectorRegistry()
    app = edge_app(settings)

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app.router.add_post("/v1/auth/login", hello)
    with caplog.at_level(logging.WARNING, logger="mercato.ratelimit"):
        async with open_rate_limits(settings, registry) as limits:
            app[keys.RATE_LIMITS] = limits
            async with TestClient(TestServer(app)) as client:
                statuses = [
                    (await client.post("/v1/auth/login")).status
                    for _ in range(POLICIES["auth"].burst * 3)
                ]
                last = await client.post("/v1/auth/login")
    assert statuses == [200] * len(statuses)
    assert last.headers["RateLimit-Policy"] == '"auth";q=10;w=60'
    assert "RateLimit" not in last.headers  # nothing known to report while failing open
    assert registry.get_sample_value("mercato_ratelimit_fail_open_total") == len(statuses) + 1
    assert "Redis unavailable" in caplog.text
