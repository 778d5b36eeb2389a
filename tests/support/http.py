"""An in-process gateway for tests, served on a real socket."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from config import Settings
from gateway.app import create_app


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
