"""Hundreds of signed-in callers at once against a real ``mercato gateway`` process.

redis-py's asyncio pool used to raise as soon as 100 connections were busy, so the
101st concurrent caller got 503 "session store is unavailable" while Redis was up and
answering. Each caller here is a distinct user, so none of them shares another's
cached revocation lookup or rate-limit bucket: every one costs the gateway Redis work.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from config import Settings
from gateway.identity.auth import TokenService
from mercato._procs import free_port
from mercato.embedded import Endpoints
from stores.users import UserRepository
from streams.admin import ensure_topics
from streams.envelope import Envelope
from tests.conftest import make_settings
from tests.support.files import mongo
from tests.support.gateways import running_gateway

pytestmark = pytest.mark.integration
CALLERS = 500
STEP = 60.0  # bound on each phase; each normally takes a second or two


@dataclasses.dataclass(frozen=True)
class World:
    """A gateway process and the users it knows."""

    settings: Settings
    base: str
    users: list[str]
    tokens: list[str]


@pytest.fixture(scope="module")
async def world(stack: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    """``CALLERS`` accounts in the read model, and a gateway with rate limits on."""
    base = make_settings(stack, tmp_path_factory.mktemp("concurrent"))
    # The limiter on (it has its own Redis pool), with room for every caller's requests.
    settings = dataclasses.replace(base, rate_limit_enabled=True, rate_limits="read=600/60:100")
    await ensure_topics(settings)
    client, db = mongo(settings)
    users = [f"crowd-{i:03d}-{uuid.uuid4().hex[:6]}" for i in range(CALLERS)]
    try:
        repo = UserRepository(db)
        now = datetime.now(UTC)
        for user_id in users:
            await repo.project_registered(
                user_id=user_id, email=f"{user_id}@example.com",
                email_normalized=f"{user_id}@example.com", name=user_id, roles=["buyer"],
                password_hash="unused", created_at=now, event_id=f"ev-{user_id}",
            )
    finally:
        await client.close()
    tokens = TokenService(settings)
    issued = [tokens.issue_access(user_id, ["buyer"]) for user_id in users]
    async with running_gateway(settings, free_port(), settings.data_dir / "gateway.log") as url:
        yield World(settings, url, users, issued)


def session() -> aiohttp.ClientSession:
    # No client-side cap: every caller gets its own connection at once.
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))


async def test_500_distinct_users_at_once_all_get_their_own_profile(world: World) -> None:
    async with session() as http:
        gate = asyncio.Event()

        async def me(token: str) -> tuple[int, str]:
            await gate.wait()
            async with http.get(
                world.base + "/v1/users/me", headers={"Authorization": f"Bearer {token}"}
            ) as response:
                body = await response.json(content_type=None)
                return response.status, str(body.get("userId", body.get("code")))

        calls = [asyncio.create_task(me(token)) for token in world.tokens]
        await asyncio.sleep(0)
        gate.set()
        answers = await asyncio.wait_for(asyncio.gather(*calls), STEP)
    statuses = [status for status, _ in answers]
    assert statuses.count(200) == CALLERS, {s: statuses.count(s) for s in set(statuses)}
    assert [user for _, user in answers] == world.users


async def test_500_websocket_clients_all_connect_and_receive_their_events(world: World) -> None:
    settings = world.settings
    async with session() as http:
        sockets = await asyncio.wait_for(asyncio.gather(*(
            http.ws_connect(world.base + "/v1/ws", headers={"Authorization": f"Bearer {t}"})
            for t in world.tokens
        )), STEP)
        try:
            for ws, user in zip(sockets, world.users, strict=True):
                await ws.send_str(orjson.dumps(
                    {"type": "subscribe", "channel": f"user:{user}"}).decode())
            frames = await asyncio.wait_for(
                asyncio.gather(*(ws.receive_json() for ws in sockets)), STEP)
            assert {f["type"] for f in frames} == {"subscribed"}, frames[:3]

            producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
            await producer.start()
            try:
                for user in world.users:
                    channel = f"user:{user}"
                    envelope = Envelope(
                        id=f"ev-{uuid.uuid4().hex}", type="user.profile_updated", version=1,
                        key=channel, occurred_at="2026-12-01T00:00:00.000Z", source="test",
                        correlation_id="crowd", causation_id=None, data={"userId": user},
                    )
                    await producer.send(
                        settings.topic("push"), envelope.encode(), key=channel.encode(),
                        headers=envelope.headers(),
                    )
                await producer.flush()
            finally:
                await producer.stop()

            events = await asyncio.wait_for(
                asyncio.gather(*(ws.receive_json() for ws in sockets)), STEP)
            assert [e["type"] for e in events] == ["event"] * CALLERS
            assert [e["channel"] for e in events] == [f"user:{u}" for u in world.users]
            assert [e["event"]["data"]["userId"] for e in events] == world.users
        finally:
            await asyncio.gather(*(ws.close() for ws in sockets))
