"""Registration end to end through the real broker, worker process, MongoDB and gateway."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiokafka import AIOKafkaConsumer

from config import Settings
from mercato.embedded import Endpoints
from streams.admin import ensure_topics
from streams.envelope import Envelope
from tests.conftest import make_settings
from tests.support.http import gateway_client
from tests.support.processes import running_worker

pytestmark = pytest.mark.integration
Client = TestClient[web.Request, web.Application]


@pytest.fixture(scope="module")
async def env(stack: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """One isolated world (topics, group, database) shared by this module's tests."""
    settings = make_settings(stack, tmp_path_factory.mktemp("registration"))
    await ensure_topics(settings)
    return settings


@pytest.fixture(scope="module")
async def worker(env: Settings) -> AsyncIterator[None]:
    """A real ``mercato worker`` process for the module."""
    async with running_worker(env, env.data_dir / "worker.log"):
        yield


@pytest.fixture(scope="module")
async def client(env: Settings, worker: None) -> AsyncIterator[Client]:
    """The gateway, in process, against the same world."""
    async with gateway_client(env) as c:
        yield c


def person(email: str, **extra: Any) -> dict[str, Any]:
    """A valid registration body."""
    return {"email": email, "password": "correct horse battery", "name": "Ada", **extra}


async def test_register_then_conflict_on_the_same_email_in_any_case(client: Client) -> None:
    first = await client.post("/v1/auth/register", json=person("Grace@Example.com"))
    assert first.status == 201, await first.text()
    body = await first.json()
    assert body["email"] == "Grace@Example.com"
    assert body["roles"] == ["buyer"]
    assert first.headers["Location"] == f"/v1/users/{body['userId']}"

    for variant in ("grace@example.com", "  GRACE@EXAMPLE.COM "):
        again = await client.post("/v1/auth/register", json=person(variant))
        assert again.status == 409
        assert again.content_type == "application/problem+json"
        assert (await again.json())["code"] == "EMAIL_TAKEN"


async def test_registered_user_can_log_in_and_read_their_profile(client: Client) -> None:
    created = await client.post("/v1/auth/register", json=person("lin@example.com", role="seller"))
    assert created.status == 201
    user_id = (await created.json())["userId"]

    login = await client.post(
        "/v1/auth/login", json={"email": "LIN@example.com", "password": "correct horse battery"}
    )
    assert login.status == 200
    tokens = await login.json()
    assert tokens["tokenType"] == "Bearer"
    me = await client.get(
        "/v1/users/me", headers={"Authorization": f"Bearer {tokens['accessToken']}"}
    )
    assert me.status == 200
    profile = await me.json()
    assert profile["userId"] == user_id
    assert profile["roles"] == ["seller"]
    assert "passwordHash" not in profile

    wrong = await client.post(
        "/v1/auth/login", json={"email": "lin@example.com", "password": "not the password"}
    )
    unknown = await client.post(
        "/v1/auth/login", json={"email": "nobody@example.com", "password": "whatever1"}
    )
    assert wrong.status == unknown.status == 401
    assert (await wrong.json())["detail"] == (await unknown.json())["detail"]


async def test_invalid_input_gets_field_errors(client: Client) -> None:
    response = await client.post(
        "/v1/auth/register", json={"email": "not-an-email", "password": "short", "extra": 1}
    )
    assert response.status == 422
    problem = await response.json()
    assert problem["code"] == "VALIDATION_ERROR"
    fields = {e["field"] for e in problem["errors"]}
    assert fields == {"email", "password", "name", "extra"}


async def test_ten_concurrent_registrations_of_one_email_create_exactly_one(
    client: Client, env: Settings
) -> None:
    async def attempt(i: int) -> int:
        email = "race@example.com" if i % 2 else "  Race@Example.COM"
        response = await client.post("/v1/auth/register", json=person(email))
        return response.status

    statuses = await asyncio.gather(*(attempt(i) for i in range(10)))
    assert sorted(statuses) == [201] + [409] * 9

    users = await _users_with_email(env, "race@example.com")
    assert len(users) == 1



async def test_concurrent_requests_sharing_an_x_request_id_each_get_their_own_answer(
    client: Client,
) -> None:
    # X-Request-ID is the client's log correlation id: it must never decide which waiting
    # request an agent's answer goes to (once, 5 got 503 and 5 got another person's email).
    async def register(i: int) -> tuple[int, dict[str, Any]]:
        response = await client.post(
            "/v1/auth/register", json=person(f"twin{i}@example.com"),
            headers={"X-Request-ID": "same-id-for-everyone"},
        )
        assert response.headers["X-Request-ID"] == "same-id-for-everyone"
        return response.status, await response.json()

    answers = await asyncio.gather(*(register(i) for i in range(10)))
    assert [status for status, _ in answers] == [201] * 10
    assert [body["email"] for _, body in answers] == [f"twin{i}@example.com" for i in range(10)]
    assert len({body["userId"] for _, body in answers}) == 10

async def test_user_registered_event_is_public_and_secret_free(
    client: Client, env: Settings
) -> None:
    created = await client.post("/v1/auth/register", json=person("event@example.com"))
    user_id = (await created.json())["userId"]
    records = await _read_all(env, env.topic("users"))
    mine = [r for r in records if r[0] == user_id.encode()]
    assert len(mine) == 1
    _key, value, headers = mine[0]
    envelope = Envelope.decode(value)
    assert envelope.type == "user.registered"
    assert envelope.data["userId"] == user_id
    assert dict(headers)["ce_type"] == b"user.registered"
    assert b"password" not in value.lower()
    assert b"argon2" not in value


async def _users_with_email(settings: Settings, email: str) -> list[dict[str, Any]]:
    from pymongo import AsyncMongoClient

    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_url)
    try:
        cursor = mongo[settings.mongo_database]["users"].find({"emailNormalized": email})
        return await cursor.to_list()
    finally:
        await mongo.close()


async def _read_all(
    settings: Settings, topic: str
) -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest",
        enable_auto_commit=False, group_id=None,
    )
    await consumer.start()
    try:
        out: list[tuple[bytes, bytes, list[tuple[str, bytes]]]] = []
        idle = 0
        while idle < 3:
            batch = await consumer.getmany(timeout_ms=500)
            idle = 0 if batch else idle + 1
            for records in batch.values():
                out.extend((r.key, r.value, list(r.headers)) for r in records)
        return out
    finally:
        await consumer.stop()


async def test_without_a_worker_the_gateway_says_503_and_nothing_is_half_written(
    stack: Endpoints, tmp_path_factory: pytest.TempPathFactory
) -> None:
    lonely = dataclasses.replace(
        make_settings(stack, tmp_path_factory.mktemp("noworker")), command_timeout=1.5
    )
    await ensure_topics(lonely)
    async with gateway_client(lonely) as c:
        response = await c.post("/v1/auth/register", json=person("later@example.com"))
        assert response.status == 503
        assert response.content_type == "application/problem+json"
        assert int(response.headers["Retry-After"]) >= 1
        assert (await response.json())["code"] == "WORKER_UNAVAILABLE"

        # The worker starts late: it sees the expired command, drops it and records that.
        async with running_worker(lonely, lonely.data_dir / "worker.log"):
            audit = await _wait_for(lonely, "audit", "command.expired")
            assert audit["data"]["commandType"] == "registration.requested"
            assert await _users_with_email(lonely, "later@example.com") == []

            retry = await c.post("/v1/auth/register", json=person("later@example.com"))
            assert retry.status == 201


async def _wait_for(settings: Settings, topic: str, type_: str) -> dict[str, Any]:
    for _ in range(40):
        for _key, value, _headers in await _read_all(settings, settings.topic(topic)):
            event: dict[str, Any] = orjson.loads(value)
            if event["type"] == type_:
                return event
        await asyncio.sleep(0.25)
    raise AssertionError(f"no {type_} on {topic}")
