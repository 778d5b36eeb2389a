"""A pending webhook delivery survives a worker restart: the next worker makes its retries."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from config import Settings
from mercato.embedded import Endpoints
from streams.admin import ensure_topics
from tests.conftest import make_settings
from tests.support.files import eventually
from tests.support.http import gateway_client
from tests.support.orders import Client, account, place, product, settled
from tests.support.processes import running_worker

pytestmark = pytest.mark.e2e
Json = dict[str, Any]


@pytest.fixture
async def env(stack: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Retries a few seconds apart: long enough to stop a worker between two of them."""
    settings = dataclasses.replace(
        make_settings(stack, tmp_path_factory.mktemp("webhooks-restart")),
        rate_limit_enabled=False, worker_session_timeout=20.0,
        saga_reserve_timeout=20.0, saga_charge_timeout=20.0,
        webhook_retry_schedule="4,4,4,4,4,4,4,4,4,4", webhook_tick=0.1,
    )
    await ensure_topics(settings)
    return settings


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[TestServer, list[int], list[int]]]:
    """A receiver answering 503 while ``answers[0]`` is 503; every status it sent, in order."""
    answers = [503]
    sent: list[int] = []

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        sent.append(answers[0])
        return web.Response(status=answers[0])

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield server, answers, sent
    finally:
        await server.close()


async def deliveries(client: Client, seller: dict[str, str], webhook_id: str) -> list[Json]:
    page = await client.get(f"/v1/webhooks/{webhook_id}/deliveries", headers=seller)
    assert page.status == 200, await page.text()
    data: list[Json] = (await page.json())["data"]
    return data


async def test_a_restarted_worker_resumes_the_pending_retries(
    env: Settings, endpoint: tuple[TestServer, list[int], list[int]],
) -> None:
    server, answers, sent = endpoint
    async with gateway_client(env) as client:
        async with running_worker(env, env.data_dir / "worker-1.log"):
            _, seller = await account(client, "seller", patience=90)
            created = await client.post("/v1/webhooks", headers=seller, json={
                "url": str(server.make_url("/hook")), "events": ["order.placed"]})
            assert created.status == 201, await created.text()
            webhook_id = (await created.json())["webhookId"]
            product_id = await product(client, seller, stock=3)
            _, buyer = await account(client)
            order_id = await place(client, buyer, [(product_id, 1)])
            await settled(client, buyer, order_id)

            async def failed_once() -> Json | None:
                rows = await deliveries(client, seller, webhook_id)
                return rows[0] if rows and rows[0]["attempts"] >= 1 else None

            pending = await eventually(failed_once, within=60, what="a first failed attempt")
            assert pending["status"] == "pending"
            assert pending["lastStatusCode"] == 503
        answers[0] = 200  # the endpoint recovers while no worker runs
        async with running_worker(env, env.data_dir / "worker-2.log"):
            async def delivered() -> Json | None:
                rows = await deliveries(client, seller, webhook_id)
                return rows[0] if rows and rows[0]["status"] == "delivered" else None

            done = await eventually(delivered, within=90, what="the delivery after the restart")
    assert done["attempts"] >= 2
    assert sent[-1] == 200
    assert sent.count(200) == 1
