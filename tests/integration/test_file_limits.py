"""Upload limits, quotas, aborted uploads and the gateway's memory while streaming 5 MB."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from bench.common import pid_peak_rss_mb
from config import Settings
from mercato.embedded import Endpoints
from streams.admin import ensure_topics
from tests.conftest import make_settings
from tests.support.files import Client, bearer, chunk_owners, eventually, form, mongo, upload
from tests.support.http import gateway_client
from tests.support.processes import child_env, running_worker, tail

pytestmark = pytest.mark.integration
Json = dict[str, Any]
MB = 1024 * 1024


@pytest.fixture(scope="module")
async def env(stack: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Small limits so that crossing them is cheap: 6 MB per upload, 8 MB per user."""
    base = make_settings(stack, tmp_path_factory.mktemp("file-limits"))
    settings = dataclasses.replace(base, max_upload_bytes=6 * MB, file_quota_bytes=8 * MB)
    await ensure_topics(settings)
    return settings


@pytest.fixture(scope="module")
async def worker(env: Settings) -> AsyncIterator[None]:
    """A real worker for the module."""
    async with running_worker(env, env.data_dir / "worker.log"):
        yield


@pytest.fixture(scope="module")
async def client(env: Settings, worker: None) -> AsyncIterator[Client]:
    """The in-process gateway."""
    async with gateway_client(env) as c:
        yield c


@pytest.fixture(scope="module")
async def db(env: Settings) -> AsyncIterator[AsyncDatabase[Json]]:
    """Direct access to GridFS."""
    mongo_client, database = mongo(env)
    yield database
    await mongo_client.close()


async def _problem(response: aiohttp.ClientResponse) -> Json:
    assert response.content_type == "application/problem+json"
    body: Json = await response.json()
    return body


async def test_over_the_upload_limit_is_413_and_leaves_no_chunks(
    client: Client, env: Settings, db: AsyncDatabase[Json]
) -> None:
    owner = bearer(env, "u-big")
    before = await chunk_owners(db)
    declared = await upload(client, owner, os.urandom(7 * MB))  # refused on Content-Length
    assert declared.status == 413
    assert (await _problem(declared))["code"] == "PAYLOAD_TOO_LARGE"
    streamed = await upload(client, owner, os.urandom(7 * MB), chunked=True)  # mid-stream
    assert streamed.status == 413
    assert (await _problem(streamed))["code"] == "PAYLOAD_TOO_LARGE"
    assert await chunk_owners(db) == before
    assert await db["fs.files"].count_documents({}) == len(before)


async def test_quota_bounds_the_stream_and_then_refuses_outright(
    client: Client, env: Settings, db: AsyncDatabase[Json]
) -> None:
    owner = bearer(env, "u-hoarder")
    assert (await upload(client, owner, os.urandom(5 * MB))).status == 201
    before = await chunk_owners(db)
    over = await upload(client, owner, os.urandom(4 * MB), chunked=True)  # 3 MB left
    assert over.status == 413
    assert (await _problem(over))["code"] == "QUOTA_EXCEEDED"
    assert await chunk_owners(db) == before
    assert (await upload(client, owner, os.urandom(3 * MB))).status == 201  # exactly full
    full = await upload(client, owner, b"x")
    assert full.status == 413
    assert (await _problem(full))["code"] == "QUOTA_EXCEEDED"


async def test_concurrent_uploads_share_the_quota(client: Client, env: Settings) -> None:
    owner = bearer(env, "u-racer")
    started = asyncio.Event()

    async def slowly() -> AsyncIterator[bytes]:
        piece = os.urandom(64 * 1024)
        for n in range(80):  # 5 MB over about half a second, with no Content-Length
            if n == 8:
                started.set()
            yield piece
            await asyncio.sleep(0.005)

    body = aiohttp.FormData()
    body.add_field("file", slowly(), filename="slow.bin",
                   content_type="application/octet-stream")
    first = asyncio.ensure_future(client.post("/v1/files", data=body, headers=owner))
    await asyncio.wait_for(started.wait(), 10)
    # The first upload holds the whole 6 MB it may write: 2 MB of the 8 MB quota are left.
    second = await upload(client, owner, os.urandom(3 * MB))
    assert second.status == 413
    assert (await _problem(second))["code"] == "QUOTA_EXCEEDED"
    assert (await first).status == 201
    # Counted and released: 3 MB left, exactly what the next upload needs.
    assert (await upload(client, owner, os.urandom(3 * MB))).status == 201


async def test_client_disconnect_midway_leaves_no_chunks(
    client: Client, env: Settings, db: AsyncDatabase[Json]
) -> None:
    before = await chunk_owners(db)
    boundary = "cut-short"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"half.bin\"\r\n\r\n").encode()
    token = bearer(env, "u-quitter")["Authorization"]
    request = (
        f"POST /v1/files HTTP/1.1\r\nHost: test\r\nAuthorization: {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {4 * MB}\r\n\r\n"
    ).encode() + head
    port = client.server.port
    assert port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request + os.urandom(2 * MB))
    await writer.drain()

    async def some_chunks_written() -> bool:
        return bool(await chunk_owners(db) - before)

    await eventually(some_chunks_written, what="the partial upload's first chunks")
    writer.transport.abort()  # the client vanishes without finishing the body

    async def cleaned_up() -> bool:
        return await chunk_owners(db) == before

    await eventually(cleaned_up, what="the aborted upload's chunks to be removed")
    del reader


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_gateway_memory_stays_flat_for_a_5_mb_round_trip(
    env: Settings, worker: None, tmp_path: Path
) -> None:
    port = _free_port()
    settings = dataclasses.replace(env, http_port=port)
    log_path = tmp_path / "gateway.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mercato", "gateway", env=child_env(settings),
            stdout=log, stderr=asyncio.subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            async def live() -> bool:
                if proc.returncode is not None:
                    raise AssertionError(f"gateway exited:\n{tail(log_path)}")
                try:
                    async with session.get(f"{base}/health/live") as response:
                        return response.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            await eventually(live, within=30, what="the gateway subprocess")
            owner = bearer(env, "u-memory")

            async def round_trip(size: int) -> None:
                data = os.urandom(size)
                async with session.post(f"{base}/v1/files", data=form(data, chunked=True),
                                        headers=owner) as created:
                    assert created.status == 201, await created.text()
                    file_id = (await created.json())["fileId"]
                digest = hashlib.sha256()
                async with session.get(f"{base}/v1/files/{file_id}/content",
                                       headers=owner) as got:
                    async for piece in got.content.iter_chunked(64 * 1024):
                        digest.update(piece)
                assert digest.hexdigest() == hashlib.sha256(data).hexdigest()

            await round_trip(1 * MB)  # warm up: imports, pools, first buffers
            before = pid_peak_rss_mb(proc.pid)
            await round_trip(5 * MB)
            after = pid_peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        await proc.wait()
    assert before is not None
    assert after is not None
    print(f"gateway VmHWM {before:.1f} MB -> {after:.1f} MB for a 5 MB upload + download")
    assert after - before < 2.0
