"""Push end to end on a real broker: WS and SSE fan-out, resume, auth and tickets."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import random
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import websockets
from aiohttp import ClientResponse, ClientSession, ClientWebSocketResponse, web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.typedefs import Handler
from aiokafka import AIOKafkaProducer

from config import Settings
from gateway.identity.auth import TokenService
from gateway.keys import SETTINGS, TOKENS
from gateway.push import setup_push
from gateway.push.keys import PUSH_HUB
from gateway.push.replay import KafkaReplayer
from streams.envelope import Envelope
from streams.errors import Forbidden, InvalidInput, MercatoError, Unauthenticated
from tests.support.files import eventually

pytestmark = pytest.mark.integration

STEP = 5.0  # seconds any single expected frame may take
STATUS = {Unauthenticated: 401, Forbidden: 403, InvalidInput: 400}


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Stand-in for the lead's error middleware: domain error -> status + code."""
    try:
        return await handler(request)
    except MercatoError as exc:
        status = next((s for cls, s in STATUS.items() if isinstance(exc, cls)), 500)
        return web.json_response({"code": exc.code}, status=status)


@pytest.fixture
async def client(topics: Settings) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """A minimal app with only the push feature, served on a random port."""
    app = web.Application(middlewares=[problems])
    app[SETTINGS] = dataclasses.replace(topics, sse_heartbeat=0.5)
    app[TOKENS] = TokenService(topics)
    setup_push(app)
    test_client = TestClient(TestServer(app))
    await test_client.start_server()
    try:
        yield test_client
    finally:
        await test_client.close()


@pytest.fixture
async def producer(topics: Settings) -> AsyncIterator[AIOKafkaProducer]:
    """A plain producer with the default (murmur2) partitioner, as the agents use."""
    prod = AIOKafkaProducer(bootstrap_servers=topics.kafka_bootstrap)
    await prod.start()
    try:
        yield prod
    finally:
        await prod.stop()


def tokens(client: TestClient[web.Request, web.Application]) -> TokenService:
    assert client.app is not None
    return client.app[TOKENS]


def bearer(client: TestClient[web.Request, web.Application], user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens(client).issue_access(user, ['buyer'])}"}


async def produce(
    producer: AIOKafkaProducer, settings: Settings, channel: str, n: int
) -> tuple[str, dict[str, Any]]:
    """Send one envelope keyed by ``channel``; return its position id and JSON."""
    env = Envelope(
        id=f"ev-{uuid.uuid4().hex[:8]}", type="user.updated", version=1, key=channel,
        occurred_at="2025-01-01T00:00:00.000Z", source="test", correlation_id=f"c{n}",
        causation_id=None, data={"n": n},
    )
    meta = await producer.send_and_wait(
        settings.topic("push"), env.encode(), key=channel.encode(), headers=env.headers()
    )
    return f"{meta.partition}-{meta.offset}", env.to_dict()


async def frame(ws: ClientWebSocketResponse) -> dict[str, Any]:
    async with asyncio.timeout(STEP):
        data: dict[str, Any] = await ws.receive_json()
    return data


async def send(ws: ClientWebSocketResponse, **payload: Any) -> dict[str, Any]:
    await ws.send_json(payload)
    return await frame(ws)


async def sse_frame(resp: ClientResponse) -> dict[str, str]:
    """The next SSE frame's fields (comments skipped)."""
    fields: dict[str, str] = {}
    async with asyncio.timeout(STEP):
        while True:
            raw = await resp.content.readline()
            if not raw:
                raise EOFError("stream ended")
            line = raw.decode().rstrip("\n")
            if not line:
                if fields:
                    return fields
                continue
            if not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")


async def test_ws_delivers_a_channels_events_to_its_subscribers_only(
    client: TestClient[web.Request, web.Application], producer: AIOKafkaProducer, topics: Settings
) -> None:
    url = str(client.make_url("/v1/ws")).replace("http", "ws", 1)
    async with (
        client.ws_connect("/v1/ws", headers=bearer(client, "U1")) as one,
        websockets.connect(url, additional_headers=bearer(client, "U2")) as two,
    ):
        assert await send(one, type="subscribe", channel="user:U1") == {
            "type": "subscribed", "channel": "user:U1"
        }
        await two.send(orjson.dumps({"type": "subscribe", "channel": "user:U2"}).decode())
        async with asyncio.timeout(STEP):
            assert orjson.loads(await two.recv())["type"] == "subscribed"
        pos, env = await produce(producer, topics, "user:U1", 1)
        assert await frame(one) == {"type": "event", "channel": "user:U1", "id": pos, "event": env}
        pos2, env2 = await produce(producer, topics, "user:U2", 2)
        async with asyncio.timeout(STEP):
            got = orjson.loads(await two.recv())  # U1's event never reached U2
        assert got == {"type": "event", "channel": "user:U2", "id": pos2, "event": env2}
        assert await send(one, type="unsubscribe", channel="user:U1") == {
            "type": "unsubscribed", "channel": "user:U1"
        }


async def test_ws_resume_replays_history_then_live_once_in_order(
    client: TestClient[web.Request, web.Application], producer: AIOKafkaProducer, topics: Settings
) -> None:
    first, env1 = await produce(producer, topics, "user:U3", 1)  # before anyone listens
    ticket, _ = tokens(client).issue_stream_ticket(tokens(client).verify(
        tokens(client).issue_access("U3", ["buyer"])
    ))
    async with client.ws_connect(f"/v1/ws?token={ticket}") as ws:
        assert (await send(ws, type="resume", channel="user:U3", after="0"))["type"] == "subscribed"
        replayed = await frame(ws)
        assert replayed == {"type": "event", "channel": "user:U3", "id": first, "event": env1}
        live = [await produce(producer, topics, "user:U3", n) for n in (2, 3)]
        got = [await frame(ws) for _ in live]
        assert [(g["id"], g["event"]) for g in got] == live
        assert await send(ws, type="ping") == {"type": "pong"}  # nothing duplicated in between
    async with client.ws_connect("/v1/ws", headers=bearer(client, "U3")) as again:
        await send(again, type="resume", channel="user:U3", after=first)
        got = [await frame(again) for _ in live]
        assert [(g["id"], g["event"]) for g in got] == live
        assert await send(again, type="ping") == {"type": "pong"}


async def test_ws_rejects_bad_frames_and_forbidden_channels_but_stays_open(
    client: TestClient[web.Request, web.Application],
) -> None:
    async with client.ws_connect("/v1/ws", headers=bearer(client, "U1")) as ws:
        assert await send(ws, type="subscribe", channel="user:U2") == {
            "type": "error", "code": "FORBIDDEN", "channel": "user:U2",
            "message": "you may not subscribe to 'user:U2'",
        }
        assert (await send(ws, type="subscribe", channel="users:U1"))["code"] == "INVALID_CHANNEL"
        assert (await send(ws, type="dance"))["code"] == "UNKNOWN_TYPE"
        bad = await send(ws, type="resume", channel="user:U1", after="x-1")
        assert bad["code"] == "INVALID_POSITION"
        await ws.send_str("{not json")
        assert (await frame(ws))["code"] == "BAD_FRAME"
        assert await send(ws, type="ping") == {"type": "pong"}
    assert (await client.get("/v1/ws")).status == 401  # refused before the upgrade


async def test_sse_streams_and_resumes_with_last_event_id(
    client: TestClient[web.Request, web.Application], producer: AIOKafkaProducer, topics: Settings
) -> None:
    path = "/v1/events?channels=user:U4,product:P4"
    async with client.get(path, headers=bearer(client, "U4")) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        assert resp.headers["Cache-Control"] == "no-cache"
        ready = await sse_frame(resp)
        assert ready["retry"] == "2000"
        assert ready["event"] == "ready"
        pos, env = await produce(producer, topics, "user:U4", 1)
        got = await sse_frame(resp)
        assert got["event"] == "user.updated"
        assert orjson.loads(got["data"]) == {"channel": "user:U4", "event": env}
        assert pos in got["id"].split(".")
        last_id = got["id"]
    missed = [await produce(producer, topics, ch, n) for n, ch in
              enumerate(["product:P4", "user:U4", "user:U9"], start=2)]
    headers = {**bearer(client, "U4"), "Last-Event-ID": last_id}
    async with client.get(path, headers=headers) as resp:
        assert (await sse_frame(resp))["event"] == "ready"
        got_events = [orjson.loads((await sse_frame(resp))["data"])["event"] for _ in range(2)]
        assert sorted(e["id"] for e in got_events) == sorted(m[1]["id"] for m in missed[:2])
        _, env5 = await produce(producer, topics, "user:U4", 5)
        assert orjson.loads((await sse_frame(resp))["data"])["event"] == env5  # no repeats


async def test_stream_tickets_and_sse_auth(
    client: TestClient[web.Request, web.Application],
) -> None:
    assert (await client.post("/v1/stream-tickets")).status == 401
    issued = await client.post("/v1/stream-tickets", headers=bearer(client, "U5"))
    assert issued.status == 201
    body = await issued.json()
    assert body["expiresIn"] == 60
    async with client.get(f"/v1/events?channels=user:U5&token={body['ticket']}") as resp:
        assert resp.status == 200
        assert (await sse_frame(resp))["event"] == "ready"
    access = tokens(client).issue_access("U5", ["buyer"])
    wrong = await client.get(f"/v1/events?channels=user:U5&token={access}")
    assert wrong.status == 401  # an access token is not a stream ticket (audience)
    as_bearer = await client.post(
        "/v1/stream-tickets", headers={"Authorization": f"Bearer {body['ticket']}"}
    )
    assert as_bearer.status == 401  # and a ticket cannot mint tickets
    forbidden = await client.get("/v1/events?channels=user:U6", headers=bearer(client, "U5"))
    assert forbidden.status == 403
    invalid = await client.get("/v1/events?channels=nope", headers=bearer(client, "U5"))
    assert invalid.status == 400
    stale = await client.get(
        "/v1/events?channels=user:U5", headers={**bearer(client, "U5"), "Last-Event-ID": "x"}
    )
    assert stale.status == 400


async def test_server_shutdown_closes_live_streams_promptly(
    client: TestClient[web.Request, web.Application],
) -> None:
    url = str(client.make_url("/v1/ws")).replace("http", "ws", 1)
    loop = asyncio.get_running_loop()
    async with (
        websockets.connect(url, additional_headers=bearer(client, "U7")) as ws,
        ClientSession() as session,
        session.get(client.make_url("/v1/events?channels=user:U7"),
                    headers=bearer(client, "U7")) as sse,
    ):
        await ws.send(orjson.dumps({"type": "subscribe", "channel": "user:U7"}).decode())
        async with asyncio.timeout(STEP):
            await ws.recv()
        assert (await sse_frame(sse))["event"] == "ready"
        started = loop.time()
        await client.server.close()
        assert loop.time() - started < 3.0  # not aiohttp's 60 s handler grace period
        with pytest.raises(websockets.ConnectionClosed) as closed:
            async with asyncio.timeout(STEP):
                await ws.recv()
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1001, "server shutdown")
        final = await sse_frame(sse)
        assert final["event"] == "close"
        assert orjson.loads(final["data"]) == {"code": 1001, "reason": "server shutdown"}


@pytest.fixture
async def small_queues(topics: Settings) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """The push app with 64 KiB of unread output allowed per client."""
    app = web.Application(middlewares=[problems])
    app[SETTINGS] = dataclasses.replace(topics, push_queue_bytes=64 * 1024)
    app[TOKENS] = TokenService(topics)
    setup_push(app)
    test_client = TestClient(TestServer(app))
    await test_client.start_server()
    try:
        yield test_client
    finally:
        await test_client.close()


async def _stalled_ws(client: TestClient[web.Request, web.Application], channel: str
                      ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket client on a raw socket, subscribed, that then reads nothing."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # so the server's buffer fills
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (client.host, client.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    token = tokens(client).issue_access("U8", ["buyer"])
    writer.write(("GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  f"Authorization: Bearer {token}\r\n\r\n").encode())
    async with asyncio.timeout(STEP):
        assert b" 101 " in await reader.readuntil(b"\r\n\r\n")
        frame = orjson.dumps({"type": "subscribe", "channel": channel})
        writer.write(bytes([0x81, 0x80 | len(frame)]) + b"\0\0\0\0" + frame)  # zero mask
        assert b'"subscribed"' in await reader.readuntil(b"}")
    return reader, writer


async def test_a_client_that_stops_reading_is_evicted_with_1013_and_nobody_else(
    small_queues: TestClient[web.Request, web.Application],
) -> None:
    client = small_queues
    assert client.app is not None
    hub = client.app[PUSH_HUB]
    channel, most = "product:P9", 2_000
    reader, writer = await _stalled_ws(client, channel)
    async with client.ws_connect("/v1/ws", headers=bearer(client, "U9")) as fast:
        await send(fast, type="subscribe", channel=channel)
        base = hub.position(hub.partition_of(channel)) + 1
        # Until the stalled client's socket buffers and its 64 KiB are full (how many events
        # that takes depends on the kernel's buffer sizes).
        padding = "x" * 32_000
        got: list[int] = []
        for n in range(most):
            if hub.stats()["evicted"]:
                break
            env = Envelope(
                id=f"big-{n}", type="product.updated", version=1, key="P9",
                occurred_at="2025-01-01T00:00:00.000Z", source="test", correlation_id=f"c{n}",
                causation_id=None, data={"n": n, "padding": padding},
            )
            hub.dispatch(channel, hub.partition_of(channel), base + n, env.to_dict())
            got.append((await frame(fast))["event"]["data"]["n"])
        assert got == list(range(len(got)))  # the reader that keeps up got every one, in order
        assert hub.stats()["evicted"] == 1
        assert await send(fast, type="ping") == {"type": "pong"}
    # The stalled client, reading again, finds what was sent before the eviction and the
    # close frame with 1013 last.
    async with asyncio.timeout(3 * STEP):
        rest = await reader.read()
    writer.close()
    assert rest.endswith(b"\x88\x0f\x03\xf5slow consumer")


async def test_a_reconnect_storm_reads_each_partition_once_for_every_resuming_client(
    producer: AIOKafkaProducer, topics: Settings
) -> None:
    channels = [f"user:S{i}-{uuid.uuid4().hex[:6]}" for i in range(12)]
    log: list[tuple[str, int, int]] = []
    for n in range(120):
        channel = channels[n % len(channels)]
        position, _ = await produce(producer, topics, channel, n)
        partition, offset = (int(part) for part in position.split("-"))
        log.append((channel, partition, offset))
    replayer = KafkaReplayer(topics)
    on: dict[int, list[str]] = {}
    for channel, partition, _ in log:
        if channel not in on.setdefault(partition, []):
            on[partition].append(channel)
    ends = {p: max(o for _, q, o in log if q == p) for p in on}
    rng = random.Random(7)
    asks = []
    for _ in range(1000):  # a thousand clients resuming at once, each from its own point
        partition = rng.choice(sorted(on))
        wanted = frozenset(rng.sample(on[partition], rng.randint(1, len(on[partition]))))
        offsets = [o for _, q, o in log if q == partition]
        after = rng.choice([-1, *offsets])
        asks.append((partition, after, wanted))
    results = await asyncio.gather(*(replayer(p, a, ends[p], w) for p, a, w in asks))
    for (partition, after, wanted), result in zip(asks, results, strict=True):
        expected = [o for c, q, o in log if q == partition and c in wanted and o > after]
        assert [e.offset for e in result.events] == expected
        assert not result.truncated
    assert replayer.requests == 1000
    assert replayer.passes == len(on)  # one read of each partition served every client


def _none(count: int) -> bool:
    return count == 0


async def _server_websockets() -> int:
    """Server-side WebSockets still alive (a handler ends a little after its close)."""
    # gc.get_objects() does not list frozen objects: with the GC policy running here, a
    # leaked WebSocket would be frozen and this count would pass while leaking.
    assert gc.get_freeze_count() == 0, "the GC policy runs in this app: count with weakrefs"
    # type(), not isinstance(): a dead weak proxy among the objects raises on the latter.
    return sum(type(o) is web.WebSocketResponse for o in gc.get_objects())


async def test_a_closed_websocket_is_freed_without_the_cycle_collector(
    client: TestClient[web.Request, web.Application],
) -> None:
    # The gateway freezes long-lived objects (gateway.runtime.gc_policy): a closed
    # connection caught in a reference cycle would stay until a full collection.
    gc.collect()
    gc.disable()
    try:
        async with client.ws_connect("/v1/ws", headers=bearer(client, "U1")) as ws:
            assert (await send(ws, type="subscribe", channel="user:U1"))["type"] == "subscribed"
        await eventually(_server_websockets, "the closed WebSocket freed", STEP, ok=_none)
        # A client that just drops the socket: aiohttp records the reset it meets.
        _reader, writer = await _stalled_ws(client, "product:P1")
        writer.close()
        await writer.wait_closed()
        await eventually(_server_websockets, "the dropped WebSocket freed", STEP, ok=_none)
    finally:
        gc.enable()
