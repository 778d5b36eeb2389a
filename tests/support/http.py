"""An in-process gateway for tests, served on a real socket (alone or with a real worker).

Every response its client receives is held to the app's own ``/openapi.json``
(``tests.support.contract``), so a handler and its declaration cannot drift apart unseen.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from config import Settings
from gateway.app import create_app
from tests.support.contract import DOCUMENT_PATH, ResponseContract
from tests.support.processes import running_worker


@contextlib.asynccontextmanager
async def gateway_client(
    settings: Settings,
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """A started gateway app (all its cleanup contexts) and a client bound to it.

    The client fails any response the app's OpenAPI document does not declare.
    """
    contract = ResponseContract()
    server = TestServer(create_app(settings))
    client = TestClient(server, middlewares=(contract,))
    await client.start_server()
    try:
        # Fetched from the app under test, once, so it is the document this app serves.
        async with client.get(DOCUMENT_PATH) as served:
            assert served.status == 200, await served.text()
            contract.load(await served.json())
        yield client
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def worker_and_gateway(
    settings: Settings,
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """A real ``mercato worker`` process, joined, and the gateway in process, bound to a client.

    The stack most integration and e2e modules drive; the worker logs to ``worker.log`` in
    ``settings.data_dir``.
    """
    log = settings.data_dir / "worker.log"
    async with running_worker(settings, log), gateway_client(settings) as client:
        yield client
