"""A store that is down answers 503 with ``Retry-After``, never a 500 with a stack."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest

from gateway.identity.passwords import hash_password
from mercato.embedded import Endpoints
from stores.users import UserRepository
from streams.admin import ensure_topics
from tests.conftest import make_settings
from tests.support.files import mongo
from tests.support.http import gateway_client

pytestmark = pytest.mark.integration


class Cable:
    """A TCP relay to a real server that can be cut, as a network partition would."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    @contextlib.asynccontextmanager
    async def plugged(self) -> AsyncIterator[int]:
        """Relay from a free local port (yielded) until the block ends."""
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        try:
            yield self._server.sockets[0].getsockname()[1]
        finally:
            self.cut()

    def cut(self) -> None:
        """Refuse new connections and drop every open one."""
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.transport.abort()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def test_sign_in_while_redis_is_down_is_503_with_retry_after(
    stack: Endpoints, tmp_path_factory: pytest.TempPathFactory, caplog: pytest.LogCaptureFixture
) -> None:
    base = make_settings(stack, tmp_path_factory.mktemp("outage"))
    await ensure_topics(base)
    client, db = mongo(base)
    try:
        await UserRepository(db).project_registered(
            user_id="u-outage", email="outage@example.com", email_normalized="outage@example.com",
            name="Out", roles=["buyer"], password_hash=await hash_password("correct horse 123"),
            created_at=datetime.now(UTC), event_id="ev-outage",
        )
    finally:
        await client.close()
    redis = urlsplit(base.redis_url)
    cable = Cable(redis.hostname or "127.0.0.1", redis.port or 6379)
    caplog.set_level(logging.INFO)
    async with cable.plugged() as port:
        settings = dataclasses.replace(base, redis_url=f"redis://127.0.0.1:{port}/0")
        async with gateway_client(settings) as gateway:
            cable.cut()  # Redis goes away once the gateway runs (sessions live there)
            response = await gateway.post(
                "/v1/auth/login",
                json={"email": "outage@example.com", "password": "correct horse 123"},
            )
            assert response.status == 503, await response.text()
            assert response.content_type == "application/problem+json"
            assert (await response.json())["code"] == "SERVICE_UNAVAILABLE"
            assert int(response.headers["Retry-After"]) > 0
    assert not [r for r in caplog.records if r.exc_info], "an outage must not log a stack"
