"""/health/ready shows the workers' table recovery and stays not ready while they recover."""

from __future__ import annotations

import asyncio

import pytest

from config import Settings
from gateway import keys
from gateway.ops.health import CACHE_SECONDS
from stores.heartbeats import FRESH_SECONDS, WorkerHeartbeats
from tests.support.http import gateway_client

pytestmark = pytest.mark.integration
PROGRESS = {
    "orders": {"restored": 1200, "toRestore": 5000},
    "stock": {"restored": 30, "toRestore": 30},
}


async def test_a_recovering_worker_is_reported_until_it_has_recovered(topics: Settings) -> None:
    async with gateway_client(topics) as client:
        # The worker's side, through the same store class (the gateway's Redis connection).
        heartbeats = WorkerHeartbeats(client.app[keys.REDIS], topics.app_id)
        await heartbeats.recovering("host-a:41", PROGRESS)

        response = await client.get("/health/ready")
        assert response.status == 503
        assert int(response.headers["Retry-After"]) > 0
        body = await response.json()
        assert body["status"] == "unavailable"
        worker = body["checks"]["worker"]
        assert worker["ok"] is False
        assert worker["recovering"] == {"host-a:41": PROGRESS}
        assert "recovering its tables (1230 of 5030 records restored)" in worker["error"]
        # A dead worker's report goes by itself.
        ttl = await client.app[keys.REDIS].pttl(f"{topics.app_id}:recovery:host-a:41")
        assert 0 < ttl <= FRESH_SECONDS * 1000

        await heartbeats.recovered("host-a:41")
        await asyncio.sleep(CACHE_SECONDS + 0.1)  # past the gateway's cached round of checks
        response = await client.get("/health/ready")
        assert response.status == 503  # no worker at all now: still not ready, for that reason
        worker = (await response.json())["checks"]["worker"]
        assert "recovering" not in worker
        assert worker["error"].startswith("no worker is consuming")
        assert await heartbeats.recoveries() == {}
