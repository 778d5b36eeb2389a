"""One world for the catalog tests: topics, a real worker process, the gateway, accounts.

Package-scoped so the catalog modules share one worker start instead of paying it each.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from config import Settings
from mercato.embedded import Endpoints
from streams.admin import ensure_topics
from tests.conftest import make_settings
from tests.support.catalog import Client, Headers, admin, signed_up
from tests.support.http import worker_and_gateway

People = dict[str, tuple[str, Headers]]


@pytest.fixture(scope="package")
async def env(stack: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Isolated topics, consumer group and database for the catalog package."""
    settings = dataclasses.replace(
        make_settings(stack, tmp_path_factory.mktemp("catalog")),
        rate_limit_enabled=False,  # these tests sign in far more often than a person would
    )
    await ensure_topics(settings)
    return settings


@pytest.fixture(scope="package")
async def client(env: Settings) -> AsyncIterator[Client]:
    """A real ``mercato worker`` process and the gateway, in process, against ``env``."""
    async with worker_and_gateway(env) as c:
        yield c


@pytest.fixture(scope="package")
async def people(client: Client, env: Settings) -> People:
    """Sellers, buyers and an admin, registered through the real agents."""
    return {
        "seller": await signed_up(client, "seller@example.com", "seller"),
        "rival": await signed_up(client, "rival@example.com", "seller"),
        "buyer": await signed_up(client, "buyer@example.com", "buyer"),
        "buyer2": await signed_up(client, "buyer2@example.com", "buyer"),
        "admin": ("", await admin(client, env, "admin@example.com")),
    }
