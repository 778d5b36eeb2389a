"""POST /v1/files with a body it cannot read: 415 for the wrong type, 400 for a broken form."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from config import Settings
from gateway.http.problems import PROBLEM_JSON
from streams.admin import ensure_topics
from tests.support.files import Client, bearer, chunk_owners, mongo
from tests.support.http import gateway_client

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[Client]:
    """A gateway with no worker: these uploads are refused before anything is announced."""
    await ensure_topics(settings)
    async with gateway_client(settings) as c:
        yield c


async def _refused(client: Client, settings: Settings, content_type: str) -> tuple[int, str]:
    response = await client.post(
        "/v1/files", data=b"--x\r\n\r\nhello\r\n--x--\r\n",
        headers={**bearer(settings, "u1"), "Content-Type": content_type},
    )
    assert response.content_type == PROBLEM_JSON, await response.text()
    problem = await response.json(content_type=PROBLEM_JSON)
    assert problem["status"] == response.status
    return response.status, problem["code"]


@pytest.mark.parametrize("content_type", ["application/json", "application/octet-stream",
                                          "text/plain"])
async def test_a_body_that_is_not_a_form_is_415(
    client: Client, settings: Settings, content_type: str
) -> None:
    assert await _refused(client, settings, content_type) == (415, "UNSUPPORTED_MEDIA_TYPE")


@pytest.mark.parametrize("content_type", ["multipart/form-data",
                                          "multipart/form-data; boundary=" + "b" * 71])
async def test_a_form_without_a_usable_boundary_is_400_and_stores_nothing(
    client: Client, settings: Settings, content_type: str
) -> None:
    assert await _refused(client, settings, content_type) == (400, "MALFORMED_MULTIPART")
    mongo_client, db = mongo(settings)
    try:
        assert await chunk_owners(db) == set()
    finally:
        await mongo_client.close()
