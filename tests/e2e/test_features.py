"""Maintenance mode across processes: one admin PUT, two gateways and a worker follow it.

Two real ``mercato gateway`` processes and a real worker share the stack. With
``maintenance`` switched on through one gateway, a write answers 503 ``MAINTENANCE`` on
both within 5 s while reads keep working; switched off through the other, writes work
again on both; the worker's own flag book follows every change too (its log says so).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from config import Settings
from gateway.identity.auth import TokenService
from mercato._procs import free_port
from streams.admin import ensure_topics
from tests.support.files import eventually
from tests.support.gateways import running_gateway
from tests.support.processes import running_worker, tail

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
APPLIES_WITHIN = 5.0


@pytest.fixture
async def gateways(settings: Settings) -> AsyncIterator[tuple[str, str]]:
    """A worker and two gateway processes on one stack; the gateways' base URLs."""
    await ensure_topics(settings)
    root: Path = settings.data_dir
    async with (
        running_worker(settings, root / "worker.log"),
        running_gateway(settings, free_port(), root / "gateway-a.log") as a,
        running_gateway(settings, free_port(), root / "gateway-b.log") as b,
    ):
        yield a, b


async def register(session: aiohttp.ClientSession, base: str) -> tuple[int, dict[str, Any]]:
    """Try to register a fresh account through ``base``: (status, body)."""
    async with session.post(f"{base}/v1/auth/register", json={
        "email": f"{uuid.uuid4().hex}@example.com", "password": "password-123", "name": "Ada",
    }) as response:
        return response.status, await response.json()


async def set_maintenance(
    session: aiohttp.ClientSession, base: str, admin: dict[str, str], on: bool
) -> None:
    """PUT the flag through ``base``."""
    async with session.put(f"{base}/v1/admin/features/maintenance", json={"enabled": on},
                           headers=admin) as response:
        assert response.status == 200, await response.text()


async def test_maintenance_applies_on_every_gateway_within_seconds(
    settings: Settings, gateways: tuple[str, str]
) -> None:
    admin = {"Authorization": "Bearer " + TokenService(settings).issue_access(
        uuid.uuid4().hex, ["admin"])}
    async with aiohttp.ClientSession() as session:
        for base in gateways:
            async def registered(base: str = base) -> bool:
                # A fresh worker may still be opening its tables: 503, nothing applied.
                return (await register(session, base))[0] == 201
            await eventually(registered, what=f"a registration through {base}", within=90)

        await set_maintenance(session, gateways[0], admin, True)
        switched = time.monotonic()
        for base in gateways:
            async def refused(base: str = base) -> dict[str, Any] | None:
                status, body = await register(session, base)
                return body if status == 503 else None
            body = await eventually(refused, what=f"maintenance on {base}", within=APPLIES_WITHIN)
            assert body["code"] == "MAINTENANCE"
            async with session.get(f"{base}/v1/products") as read:
                assert read.status == 200
            async with session.get(f"{base}/v1/config/features") as mine:
                assert (await mine.json())["maintenance"] is True
        assert time.monotonic() - switched < APPLIES_WITHIN

        await set_maintenance(session, gateways[1], admin, False)
        switched = time.monotonic()
        for base in gateways:
            async def accepted(base: str = base) -> bool:
                return (await register(session, base))[0] == 201
            await eventually(accepted, what=f"writes again on {base}", within=APPLIES_WITHIN)
        assert time.monotonic() - switched < APPLIES_WITHIN

    worker_log = settings.data_dir / "worker.log"

    async def worker_followed() -> bool:
        return worker_log.read_text(errors="replace").count("feature flag changed") >= 2
    try:
        await eventually(worker_followed, what="the worker's book to follow", within=10)
    except AssertionError:
        raise AssertionError(f"the worker did not log both changes:\n{tail(worker_log)}") from None
