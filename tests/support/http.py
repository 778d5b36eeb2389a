"""An in-process gateway for tests, served on a real socket (alone or with a real worker)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from config import Settings
from gateway.app import create_app
from tests.support.processes import running_worker


@contextlib.asynccontextmanager
async def gateway_client(
    settings: Settings,
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """A started gateway app (all its cleanup contexts) and a client bound to it."""
    server = TestServer(create_app(settings))
    client = TestClient(server)
    await client.start_server()
    try:
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
