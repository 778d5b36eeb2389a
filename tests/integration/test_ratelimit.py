"""Rate limits through real gateways and a real Redis: 429s, headers, sharing, isolation."""

from __future__ import annotations

import dataclasses
import math
import re
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from config import Settings
from gateway.http.ratelimit import POLICIES
from gateway.identity.auth import TokenService
from mercato._procs import free_port
from tests.support.gateways import running_gateway
from tests.support.http import gateway_client

pytestmark = pytest.mark.integration
AUTH = POLICIES["auth"]
RATELIMIT = re.compile(r'^"(?P<name>[a-z]+)";r=(?P<r>\d+);t=(?P<t>\d+)$')


def limited(settings: Settings, spec: str) -> Settings:
    """``settings`` with rate limits on and ``spec`` overriding the table."""
    return dataclasses.replace(settings, rate_limit_enabled=True, rate_limits=spec)


async def test_auth_bucket_refuses_with_429_and_every_header(topics: Settings) -> None:
    async with gateway_client(limited(topics, "")) as client:
        for i in range(AUTH.burst):
            response = await client.post("/v1/auth/login", json={})
            assert response.status == 422
            assert response.headers["RateLimit-Policy"] == '"auth";q=10;w=60'
            match = RATELIMIT.match(response.headers["RateLimit"])
            assert match is not None, response.headers["RateLimit"]
            assert (match["name"], int(match["r"])) == ("auth", AUTH.burst - 1 - i)
            assert response.headers["X-RateLimit-Limit"] == "10"
            assert response.headers["X-RateLimit-Remaining"] == match["r"]

        refused = await client.post("/v1/auth/login", json={}, headers={"X-Request-ID": "rl-1"})
        assert refused.status == 429
        assert refused.content_type == "application/problem+json"
        problem = await refused.json()
        assert problem["code"] == "RATE_LIMITED"
        assert problem["requestId"] == "rl-1" == refused.headers["X-Request-ID"]
        retry = int(refused.headers["Retry-After"])
        assert 1 <= retry <= math.ceil(AUTH.window / AUTH.quota)
        assert refused.headers["RateLimit"] == f'"auth";r=0;t={retry}'
        assert refused.headers["X-RateLimit-Remaining"] == "0"
        assert refused.headers["X-RateLimit-Reset"] == str(retry)
        # Security headers ride on refusals too.
        assert refused.headers["X-Content-Type-Options"] == "nosniff"

        # Exempt routes carry no limit headers and are never refused.
        live = await client.get("/health/live")
        assert live.status == 200
        assert "RateLimit" not in live.headers


async def test_each_user_has_their_own_bucket(topics: Settings) -> None:
    settings = limited(topics, "read=1/3600:3")
    tokens = TokenService(settings)
    ada = {"Authorization": f"Bearer {tokens.issue_access('ada', ['buyer'])}"}
    bob = {"Authorization": f"Bearer {tokens.issue_access('bob', ['buyer'])}"}
    async with gateway_client(settings) as client:
        statuses = [(await client.get("/v1/users/me", headers=ada)).status for _ in range(4)]
        assert statuses[:3].count(429) == 0
        assert statuses[3] == 429
        assert (await client.get("/v1/users/me", headers=bob)).status != 429
        # Anonymous callers count against their address, not against ada.
        assert (await client.get("/v1/users/me")).status == 401
        # A forged token is not a way into someone else's (or a fresh) bucket.
        forged = {"Authorization": "Bearer not.a.token"}
        assert (await client.get("/v1/users/me", headers=forged)).status == 401


@pytest.fixture
async def two_gateways(topics: Settings) -> AsyncIterator[tuple[Settings, list[str]]]:
    """Two gateway processes of one deployment (same Redis, same app id)."""
    settings = limited(topics, "read=1/3600:20")
    logs = topics.data_dir
    async with (
        running_gateway(settings, free_port(), logs / "gw-a.log") as a,
        running_gateway(settings, free_port(), logs / "gw-b.log") as b,
    ):
        yield settings, [a, b]


async def test_two_gateway_processes_share_one_bucket(
    two_gateways: tuple[Settings, list[str]],
) -> None:
    _settings, bases = two_gateways
    async with aiohttp.ClientSession() as session:
        started = time.monotonic()
        auth_ok = 0
        for i in range(3 * AUTH.burst):
            async with session.post(bases[i % 2] + "/v1/auth/login", json={}) as response:
                auth_ok += response.status != 429
        elapsed = time.monotonic() - started
        # Exact policy: the burst, plus whatever refilled meanwhile; never one per instance.
        assert AUTH.burst <= auth_ok <= AUTH.burst + math.floor(elapsed * AUTH.rate)

        read_ok = 0
        for i in range(40):
            async with session.get(bases[i % 2] + "/v1/users/me") as response:
                assert response.status in (401, 429)
                read_ok += response.status == 401
        # Leased policy: never above the bucket; below it by at most one lease per instance
        # (documented in gateway/http/ratelimit/limiter.py). 1/3600 refills nothing meanwhile.
        lease = max(1, 20 // 8)
        assert 20 - 2 * lease <= read_ok <= 20
