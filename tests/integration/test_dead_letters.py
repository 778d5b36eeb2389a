"""Bad records on every topic an agent reads: set aside on ``dlq``, listed, counted, re-driven.

The topics come from the agents the worker declares (``agents.app.DOMAINS``), never from a
list kept here: a new agent's topic is covered the day it is added. On each, one record of
every kind no agent can process (not JSON, an unknown type, a newer version, a missing
field, 1 MB) goes to ``dlq`` with its position and reason, and a good record sent after them
is still processed. The ``dlq`` topic itself is read by the dead-letters agent, which keeps
a bad record there in its read model instead of writing it back to ``dlq``.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import faust
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from agents.app import DOMAINS, faust_settings
from config import Settings
from gateway.identity.auth import TokenService
from mercato.deadletters import list_letters, redrive_letter
from mercato.embedded import Endpoints
from streams.admin import ensure_topics
from streams.envelope import Envelope
from streams.events.ops import DeadLettered
from streams.registry import all_specs
from tests.conftest import make_settings
from tests.support.contract import unchecked
from tests.support.files import eventually, upload
from tests.support.http import worker_and_gateway
from tests.support.orders import (
    Client,
    account,
    place,
    product,
    read_all,
    settled,
    worker_caught_up,
)
from tests.support.recording import RecordingEffects, close_unstarted_consumer_loop

pytestmark = pytest.mark.integration
ONE_MB = 1_000_000
KEY = b"bad-record"
# What each kind of bad record is, and the start of the reason its dead letter gives.
REASONS = {
    "malformed": "EnvelopeError: value is not JSON",
    "unknown type": "UnknownEventType: event type 'test.never_registered' is not registered",
    "newer version": "UnsupportedVersion: ",
    "missing field": "EnvelopeError: envelope field 'data' is missing",
    "1 MB": "RecordTooLarge: value of 1000000 bytes",
}


def agents_by_topic(settings: Settings, tmp: Path) -> dict[str, set[str]]:
    """Catalogue topic -> the agents the worker declares on it, from the declarations."""
    app = faust.App(settings.app_id, **faust_settings(
        dataclasses.replace(settings, data_dir=tmp), store="memory://"))
    found: dict[str, set[str]] = {}
    try:
        for _, install in DOMAINS:
            for name, agent in install(app, settings, RecordingEffects()).items():
                for topic in agent.channel.topics:
                    found.setdefault(topic.removeprefix(settings.topic_prefix), set()).add(name)
    finally:
        close_unstarted_consumer_loop(app)
    return found


def bad_records(topic: str) -> dict[str, bytes]:
    """One record of each kind no agent can process, for catalogue topic ``topic``."""
    spec = next(s for s in all_specs() if s.topic == topic)
    newest = max(s.version for s in all_specs() if s.type == spec.type)
    base = {"id": str(uuid.uuid4()), "type": spec.type, "version": spec.version,
            "key": KEY.decode(), "occurredAt": "2026-12-01T00:00:00.000Z", "source": "tests",
            "correlationId": "c", "causationId": None, "data": {}}
    padding = ONE_MB - len(orjson.dumps({"pad": ""}))
    return {
        "malformed": b'{"id": "' + topic.encode() + b'", not json',
        "unknown type": orjson.dumps({**base, "type": "test.never_registered"}),
        "newer version": orjson.dumps({**base, "version": newest + 1}),
        "missing field": orjson.dumps({k: v for k, v in base.items() if k != "data"}),
        "1 MB": orjson.dumps({"pad": "x" * padding}),
    }


async def produce_raw(settings: Settings, topic: str, records: list[tuple[bytes, bytes]]
                      ) -> list[tuple[int, int]]:
    """Produce ``(key, value)`` as they are (no envelope check); their (partition, offset)."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all",
                                max_request_size=2 * ONE_MB)
    await producer.start()
    try:
        sent = [await producer.send_and_wait(topic, key=key, value=value)
                for key, value in records]
    finally:
        await producer.stop()
    return [(meta.partition, meta.offset) for meta in sent]


def letters_on_dlq(records: list[tuple[str, bytes, bytes]]) -> dict[tuple[str, str, int, int],
                                                                     DeadLettered]:
    """The dead letters on ``dlq`` by (agent, topic, partition, offset).

    Skips what is not one: the bad records put on ``dlq`` itself by the test of that.
    """
    out = {}
    for _, _, value in records:
        try:
            letter = Envelope.decode(value).payload(DeadLettered)
        except ValueError:
            continue
        out[(letter.agent, letter.topic, letter.partition, letter.offset)] = letter
    return out


@dataclasses.dataclass
class World:
    """The stack, the agents per topic, and where each bad and good record went."""

    settings: Settings
    client: Client
    admin: dict[str, str]
    agents: dict[str, set[str]]
    bad: dict[tuple[str, str], tuple[int, int]] = dataclasses.field(default_factory=dict)
    good: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict)


@pytest.fixture(scope="module")
async def env(stack: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings with every topic created."""
    settings = make_settings(stack, tmp_path_factory.mktemp("dead-letters"))
    await ensure_topics(settings)
    return settings


@pytest.fixture(scope="module")
async def world(env: Settings, tmp_path_factory: pytest.TempPathFactory
                ) -> AsyncIterator[World]:
    """A worker and gateway with genuine records on every topic an agent reads."""
    agents = agents_by_topic(env, tmp_path_factory.mktemp("declared"))
    async with worker_and_gateway(env) as client:
        _, seller = await account(client, "seller", patience=90)
        product_id = await product(client, seller, stock=5)
        _, buyer = await account(client)
        order_id = await place(client, buyer, [(product_id, 1)])
        await settled(client, buyer, order_id, until={"completed"})
        renamed = await client.patch("/v1/users/me", json={"name": "Renamed"}, headers=buyer)
        assert renamed.status == 200, await renamed.text()
        assert (await upload(client, buyer, b"some bytes")).status == 201
        viewed = await client.post("/v1/analytics/events", headers=buyer, json={
            "events": [{"type": "product.viewed", "properties": {"productId": product_id}}]})
        assert viewed.status == 202, await viewed.text()
        # After the order, so nothing is ever delivered to it: a record on ``webhooks``.
        hooked = await client.post("/v1/webhooks", headers=seller, json={
            "url": "https://hooks.example.com/mercato", "events": ["order.placed"]})
        assert hooked.status == 201, await hooked.text()
        grouped = await client.post("/v1/groups", headers=buyer, json={"name": "Friends"})
        assert grouped.status == 201, await grouped.text()  # a record on ``groups``
        token = TokenService(env).issue_access(uuid.uuid4().hex, ["admin"])
        yield World(env, client, {"Authorization": f"Bearer {token}"}, agents)


@pytest.mark.timeout(400)  # the world fixture runs a whole order first
async def test_every_bad_record_is_dead_lettered_where_it_was_and_the_agents_go_on(
    world: World,
) -> None:
    settings, sources = world.settings, sorted(set(world.agents) - {"dlq"})
    genuine: dict[str, tuple[bytes, bytes]] = {}

    async def every_topic_has_a_genuine_record() -> bool:
        for topic, _, key, value in [(t, *r) for t in sources if t not in genuine
                                     for r in await read_all(settings, [t])]:
            genuine[topic] = (key, value)
        return set(genuine) == set(sources)

    # A topic this flow leaves empty fails here: extend the flow in ``world``.
    await eventually(every_topic_has_a_genuine_record, within=60,
                     what=f"a genuine record on each of {sources}")
    for topic in sources:
        kinds = bad_records(topic)
        # The good record goes last: processed means every bad one before it was set aside.
        positions = await produce_raw(settings, settings.topic(topic),
                                      [(KEY, v) for v in kinds.values()] + [genuine[topic]])
        world.bad.update(zip([(topic, kind) for kind in kinds], positions, strict=False))
        world.good[topic] = positions[-1]

    wanted = {(agent, settings.topic(topic), *where): kind
              for (topic, kind), where in world.bad.items() for agent in world.agents[topic]}

    async def all_dead_lettered() -> dict[tuple[str, str, int, int], DeadLettered] | None:
        letters = letters_on_dlq(await read_all(settings, ["dlq"]))
        return letters if wanted.keys() <= letters.keys() else None

    letters = await eventually(all_dead_lettered, within=90, what="every bad record on dlq")
    for position, kind in wanted.items():
        letter = letters[position]
        assert letter.error.startswith(REASONS[kind]), (position, letter.error)
        assert letter.attempts == 1  # a record's own fault is not retried
        assert letter.truncated == (kind == "1 MB")
        assert letter.size == (ONE_MB if kind == "1 MB" else len(letter.value.encode()))
    # The agents went on: the group committed past every good record, none dead-lettered.
    await worker_caught_up(settings, sources)
    letters = letters_on_dlq(await read_all(settings, ["dlq"]))
    for topic, (partition, offset) in world.good.items():
        for agent in world.agents[topic]:
            assert (agent, settings.topic(topic), partition, offset) not in letters

    # Listed by the admin API, newest first, by topic and agent, page by page.
    async def listed() -> list[dict[str, Any]] | None:
        rows: list[dict[str, Any]] = []
        cursor = ""
        while True:
            page = await world.client.get(
                f"/v1/admin/dead-letters?limit=50{cursor}", headers=world.admin)
            assert page.status == 200, await page.text()
            body = await page.json()
            rows.extend(body["data"])
            if not body["pagination"]["hasMore"]:
                return rows if len(rows) >= len(wanted) else None
            cursor = f"&cursor={body['pagination']['nextCursor']}"

    rows = await eventually(listed, within=30, what="the dead letters projected")
    assert {(r["agent"], r["topic"], r["partition"], r["offset"]) for r in rows} == set(wanted)
    assert [r["failedAt"] for r in rows] == sorted((r["failedAt"] for r in rows), reverse=True)
    audit = settings.topic("audit")
    by_topic = await (await world.client.get(
        f"/v1/admin/dead-letters?topic={audit}&agent=audit&limit=100", headers=world.admin)).json()
    assert sorted(r["error"].split(":")[0] for r in by_topic["data"]) == sorted(
        reason.split(":")[0] for reason in REASONS.values())

    with unchecked("/metrics is Prometheus text, outside the OpenAPI document"):
        metrics = await (await world.client.get("/metrics")).text()
    assert f'mercato_dead_letters_total{{agent="audit",topic="{audit}"}} 5.0' in metrics


async def test_a_bad_record_on_dlq_is_kept_in_the_read_model_and_not_written_back(
    world: World,
) -> None:
    settings, dlq = world.settings, world.settings.topic("dlq")
    assert world.agents["dlq"] == {"dead-letters"}
    before = len(await read_all(settings, ["dlq"]))
    records = [(KEY, value) for value in bad_records("dlq").values()]
    positions = dict(zip(REASONS, await produce_raw(settings, dlq, records), strict=True))

    async def kept() -> list[dict[str, Any]] | None:
        page = await world.client.get(
            f"/v1/admin/dead-letters?agent=dead-letters&topic={dlq}", headers=world.admin)
        rows: list[dict[str, Any]] = (await page.json())["data"]
        return rows if len(rows) == len(positions) else None

    rows = await eventually(kept, within=30, what="the bad dlq records in the read model")
    by_offset = {row["offset"]: row for row in rows}
    for kind, (partition, offset) in positions.items():
        assert by_offset[offset]["partition"] == partition
        assert by_offset[offset]["error"].startswith(REASONS[kind])
    await worker_caught_up(settings, ["dlq"])
    # Nothing new on dlq but the five records themselves: no dead letter of a dead letter.
    assert len(await read_all(settings, ["dlq"])) == before + len(positions)


async def test_a_dead_letter_is_redriven_once(world: World, capsys: pytest.CaptureFixture[str]
                                              ) -> None:
    client, admin, settings = world.client, world.admin, world.settings
    audit = settings.topic("audit")

    async def unknown_type_letter() -> dict[str, Any] | None:
        page = await client.get(f"/v1/admin/dead-letters?topic={audit}&agent=audit&limit=100",
                                headers=admin)
        rows = [r for r in (await page.json())["data"]
                if r["error"].startswith("UnknownEventType")]
        return rows[0] if rows else None

    letter = await eventually(unknown_type_letter, within=90, what="an audit dead letter")
    letter_id = letter["deadLetterId"]
    detail = await (await client.get(f"/v1/admin/dead-letters/{letter_id}", headers=admin)).json()
    assert orjson.loads(detail["value"])["type"] == "test.never_registered"

    _, buyer = await account(client)
    refused = await client.post(f"/v1/admin/dead-letters/{letter_id}/redrive", headers=buyer)
    assert refused.status == 403
    redriven = await client.post(f"/v1/admin/dead-letters/{letter_id}/redrive", headers=admin)
    assert redriven.status == 202, await redriven.text()
    body = await redriven.json()
    assert body["redrivenAt"] is not None
    assert body["redrivenTo"]["topic"] == audit
    again = await client.post(f"/v1/admin/dead-letters/{letter_id}/redrive", headers=admin)
    assert (again.status, (await again.json())["code"]) == (409, "DEAD_LETTER_REDRIVEN")
    missing = await client.post("/v1/admin/dead-letters/nope/redrive", headers=admin)
    assert (missing.status, (await missing.json())["code"]) == (404, "NOT_FOUND")

    # Re-produced as it was, key and value; still bad, so set aside again at its new place.
    to = body["redrivenTo"]
    records = await read_all(settings, ["audit"])
    redone = [r for r in records if r[2] == detail["value"].encode()]
    assert [key for _, key, _ in redone] == [KEY, KEY]

    async def set_aside_again() -> bool:
        letters = letters_on_dlq(await read_all(settings, ["dlq"]))
        return ("audit", audit, to["partition"], to["offset"]) in letters

    await eventually(set_aside_again, within=30, what="the re-driven record dead-lettered")

    big = [r for r in (await (await client.get(
        f"/v1/admin/dead-letters?topic={audit}&agent=audit&limit=100", headers=admin)).json()
        )["data"] if r["truncated"]]
    cut = await client.post(f"/v1/admin/dead-letters/{big[0]['deadLetterId']}/redrive",
                            headers=admin)
    assert (cut.status, (await cut.json())["code"]) == (409, "DEAD_LETTER_TRUNCATED")

    # The command line does the same.
    assert await list_letters(settings, topic=audit, agent="audit", limit=100) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].startswith("deadLetterId\t")
    assert any(letter_id in line for line in listed)
    assert await redrive_letter(settings, letter_id) == 1
    assert "DEAD_LETTER_REDRIVEN" in capsys.readouterr().err
    other = next(line.split("\t")[0] for line in listed[1:]
                 if "\tUnsupportedVersion" in line)
    assert await redrive_letter(settings, other) == 0
    assert f"re-driven {other} to {audit}" in capsys.readouterr().out
