"""Analytics across worker crashes: SIGKILL mid-stream, and a restart without local state."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from config import Settings
from mercato.embedded import Endpoints
from stores.heartbeats import WorkerHeartbeats
from stores.redisdb import redis_client
from streams.admin import ensure_topics
from tests.e2e.test_analytics import CLOSE, analytics_settings
from tests.support.analytics import Expected, admin, expected, listed, matches
from tests.support.files import eventually, mongo
from tests.support.http import gateway_client
from tests.support.orders import Client, account, place, read_all, settled
from tests.support.processes import running_worker

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


async def _agree(client: Client, views: dict[str | None, dict[str, str]],
                 want: dict[str | None, Expected]) -> None:
    """Every scope's dashboard says exactly ``want`` (eventually)."""
    last: dict[str | None, Any] = {}
    for seller, headers in views.items():
        async def current(h: dict[str, str] = headers, s: str | None = seller) -> bool:
            response = await client.get("/v1/analytics/dashboard", headers=h)
            body: dict[str, Any] = await response.json()
            last[s] = body.get("today", body)
            return response.status == 200 and matches(body["today"], want[s])

        try:
            await eventually(current, within=90, what=f"the dashboard of {seller} to be exact")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: wanted {want[seller]}, last {last[seller]}") from None


async def _dead_member_expired(env: Settings) -> None:
    """Wait until the killed worker's heartbeat is stale.

    Otherwise the readiness probe could take the dead worker's last heartbeat for the new
    one's, and the test would go on before the new worker processes anything.
    """
    async def gone() -> bool:
        redis = redis_client(env)
        try:
            return await WorkerHeartbeats(redis, env.app_id).processing() == 0
        finally:
            await redis.aclose()

    await eventually(gone, within=90, what="the killed worker to leave its group")


async def _minutes_on_topic(env: Settings) -> set[datetime]:
    """The marketplace minute windows published on ``analytics-windows`` so far."""
    return {
        datetime.fromisoformat(orjson.loads(value)["data"]["start"])
        for _, key, value in await read_all(env, ["analytics-windows"])
        if key.decode().startswith("marketplace|checkouts|minute|")
    }


async def _minute_stored(env: Settings, start: datetime) -> bool:
    client, db = mongo(env)
    try:
        return await db["analytics_windows"].find_one(
            {"scope": "marketplace", "size": "minute", "start": start}) is not None
    finally:
        await client.close()


async def _report_agrees(client: Client, operator: dict[str, str],
                         want: dict[str | None, Expected]) -> None:
    async def day() -> bool:
        response = await client.get("/v1/analytics/reports?groupBy=day", headers=operator)
        rows = (await response.json())["data"]
        return len(rows) == 1 and matches(rows[0], want[None])

    await eventually(day, within=CLOSE, what="the day's report to be exact")


async def test_numbers_are_exact_after_a_crash_and_after_losing_local_state(
    stack: Endpoints, tmp_path: Path,
) -> None:
    # The default session: a restarted worker's group waits that long for the dead member.
    env = dataclasses.replace(analytics_settings(stack, tmp_path), worker_session_timeout=10.0)
    await ensure_topics(env)
    log = env.data_dir / "worker.log"
    ids: list[str] = []
    async with gateway_client(env) as client:
        async with running_worker(env, log) as proc:
            operator = await admin(client, env)
            s1_id, s1 = await account(client, "seller", patience=90)
            s2_id, s2 = await account(client, "seller")
            _, buyer = await account(client)
            usd, eur, usd2 = await asyncio.gather(
                listed(client, s1, price="12.00", currency="USD"),
                listed(client, s2, price="3.30", currency="EUR"),
                listed(client, s2, price="1.10", currency="USD"))
            ids += await asyncio.gather(*(place(client, buyer, basket) for basket in (
                [(usd, 1)], [(eur, 2)], [(usd, 2), (usd2, 1)])))
            await asyncio.gather(*(settled(client, buyer, o, until={"completed"}) for o in ids))
            # The crash must fall inside a minute, so that minute is still open then: its
            # window closes 5 s after the minute ends, the orders and the marker take a
            # second or two. Waiting for the next minute costs as much as a late crash whose
            # aftermath (settling, the refund) spills into the next minute: only when needed.
            if datetime.now(UTC).second >= 45:
                await asyncio.sleep(61 - datetime.now(UTC).second)
            # Mid-stream: orders accepted and on their way when the worker dies.
            ids += await asyncio.gather(*(place(client, buyer, basket) for basket in (
                [(eur, 1)], [(usd2, 3)], [(usd, 1), (usd2, 2)])))
            # A fact of the crash's own minute, whose window cannot have closed yet.
            crashed_at = datetime.now(UTC)
            marker = await client.post("/v1/analytics/events", json={"events": [
                {"type": "checkout.started", "sessionId": "crash", "at": crashed_at.isoformat()}]})
            assert marker.status == 202, await marker.text()
            crash_minute = crashed_at.replace(second=0, microsecond=0)
            before_kill = await _minutes_on_topic(env)
            assert crash_minute not in before_kill
            proc.kill()
            await proc.wait()
        await _dead_member_expired(env)
        async with running_worker(env, log):
            await asyncio.gather(*(settled(client, buyer, o, until={"completed"}, within=120)
                                   for o in ids))
            cancel = await client.post(f"/v1/orders/{ids[1]}/cancel", headers=buyer)
            assert cancel.status == 202, await cancel.text()
            await settled(client, buyer, ids[1], until={"refunded"})
            orders = [await (await client.get(f"/v1/orders/{o}", headers=buyer)).json()
                      for o in ids]
            want = expected(orders)
            views: dict[str | None, dict[str, str]] = {None: operator, s1_id: s1, s2_id: s2}
            await _agree(client, views, want)
            await _report_agrees(client, operator, want)
            # The window open at the crash closed after it: in MongoDB and on the topic.
            await eventually(lambda: _minute_stored(env, crash_minute), within=CLOSE,
                             what="the crash's minute window to be stored")
            assert crash_minute in await _minutes_on_topic(env)
        # The worker's local tables are gone: everything is recovered from the changelogs.
        await _dead_member_expired(env)
        shutil.rmtree(env.data_dir / "worker")
        async with running_worker(env, log):
            ids.append(await place(client, buyer, [(eur, 2)]))
            await settled(client, buyer, ids[-1], until={"completed"}, within=120)
            orders = [await (await client.get(f"/v1/orders/{o}", headers=buyer)).json()
                      for o in ids]
            want = expected(orders)
            await _agree(client, views, want)
            await _report_agrees(client, operator, want)
