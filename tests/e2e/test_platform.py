"""The whole platform as a user runs it: ``mercato dev``, then REST, WebSocket, SSE and Kafka."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import orjson
import pytest
import websockets
from aiokafka import AIOKafkaConsumer

from mercato._procs import die_with_parent
from mercato.devserver import CHILD_GRACE
from mercato.embedded import STOP_GRACE

# Alone after the parallel tiers (Makefile): each test runs a whole `mercato dev` stack.
pytestmark = [pytest.mark.e2e, pytest.mark.serial]
READY_TIMEOUT = 90.0
# The longest an orderly stop may take: each child (gateway, worker) its grace, then each
# service (broker, MongoDB, Redis) its grace, before SIGKILL; and some slack for a
# loaded machine. A stop that outlasts every grace is a defect, not a slow machine.
STOP_TIMEOUT = 2 * CHILD_GRACE + 3 * STOP_GRACE + 15.0


@dataclass
class DevStack:
    """A running ``mercato dev`` and what its banner said."""

    proc: subprocess.Popen[str]
    base: str
    kafka: str
    lines: list[str]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_dev(data_dir: Path, port: int) -> DevStack:
    """Start ``mercato dev`` and wait for its single ready line (bounded)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MERCATO_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mercato", "dev", "--port", str(port), "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        preexec_fn=die_with_parent(),  # a killed test run leaves no stack behind
    )
    lines: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        with proc.stdout:  # closed at EOF, when mercato dev has exited
            for line in proc.stdout:
                lines.append(line.rstrip("\n"))
                if line.startswith("mercato ready"):
                    ready.set()

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + READY_TIMEOUT
    while not ready.wait(0.2):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("mercato dev did not become ready:\n" + "\n".join(lines[-60:]))
    kafka = next(m.group(1) for line in lines if (m := re.match(r"\s+Kafka\s+(\S+)", line)))
    return DevStack(proc, f"http://127.0.0.1:{port}", kafka, lines)


def stop_dev(dev: DevStack) -> int:
    """Ctrl-C, as a user would; the exit code."""
    dev.proc.send_signal(signal.SIGINT)
    try:
        return dev.proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        dev.proc.kill()
        said = "\n".join(dev.lines[-40:])
        raise AssertionError(
            f"mercato dev did not stop within {STOP_TIMEOUT:g}s:\n{said}") from None


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dev stack's data dir, shared by the restart test."""
    return tmp_path_factory.mktemp("dev")


@pytest.fixture(scope="module")
def dev(data_dir: Path) -> Iterator[DevStack]:
    """One ``mercato dev`` for the module."""
    stack = start_dev(data_dir, _free_port())
    try:
        yield stack
    finally:
        if stack.proc.poll() is None:
            stop_dev(stack)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain HTTP client."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


async def _signup(http: aiohttp.ClientSession, base: str, email: str) -> tuple[str, str]:
    body = {"email": email, "password": "correct horse battery", "name": "Edsger"}
    async with http.post(f"{base}/v1/auth/register", json=body) as response:
        assert response.status == 201, await response.text()
        user_id: str = (await response.json())["userId"]
    credentials = {"email": email, "password": body["password"]}
    async with http.post(f"{base}/v1/auth/login", json=credentials) as response:
        assert response.status == 200, await response.text()
        token: str = (await response.json())["accessToken"]
    return user_id, token


async def test_registration_is_pushed_over_websocket(
    dev: DevStack, http: aiohttp.ClientSession
) -> None:
    user_id, token = await _signup(http, dev.base, "ws@example.com")
    url = dev.base.replace("http://", "ws://") + "/v1/ws"
    async with websockets.connect(
        url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=10
    ) as ws:
        # The event happened before we connected: resume from the start of the channel.
        resume = {"type": "resume", "channel": f"user:{user_id}", "after": "0"}
        await ws.send(orjson.dumps(resume).decode())
        frames = [orjson.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(2)]
        assert frames[0] == {"type": "subscribed", "channel": f"user:{user_id}"}
        event = frames[1]
        assert event["type"] == "event"
        assert event["channel"] == f"user:{user_id}"
        assert re.fullmatch(r"\d+-\d+", event["id"])
        assert event["event"]["type"] == "user.registered"
        assert event["event"]["data"]["userId"] == user_id

        await ws.send(orjson.dumps({"type": "ping"}).decode())
        assert orjson.loads(await asyncio.wait_for(ws.recv(), 10)) == {"type": "pong"}


async def test_registration_is_pushed_over_sse_with_a_stream_ticket(
    dev: DevStack, http: aiohttp.ClientSession
) -> None:
    user_id, token = await _signup(http, dev.base, "sse@example.com")
    async with http.post(
        f"{dev.base}/v1/stream-tickets", headers={"Authorization": f"Bearer {token}"}
    ) as response:
        assert response.status == 201
        ticket = (await response.json())["ticket"]
    params = {"channels": f"user:{user_id}", "token": ticket, "lastEventId": "0"}
    async with http.get(f"{dev.base}/v1/events", params=params) as stream:
        assert stream.status == 200
        assert stream.content_type == "text/event-stream"
        frame = await asyncio.wait_for(_next_frame(stream, "user.registered"), 15)
    assert frame["channel"] == f"user:{user_id}"
    assert frame["event"]["data"]["userId"] == user_id


async def _next_frame(stream: aiohttp.ClientResponse, event_type: str) -> dict[str, Any]:
    fields: dict[str, str] = {}
    async for raw in stream.content:
        line = raw.decode().rstrip("\r\n")
        if line == "":
            if fields.get("event") == event_type:
                data: dict[str, Any] = orjson.loads(fields["data"])
                return data
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
    raise AssertionError("stream ended before the event")


async def test_data_teams_read_a_documented_event_from_kafka(
    dev: DevStack, http: aiohttp.ClientSession
) -> None:
    user_id, _ = await _signup(http, dev.base, "kafka@example.com")
    async with http.get(f"{dev.base}/schemas/events/user.registered/v1") as response:
        assert response.status == 200
        schema = await response.json(content_type=None)
    async with http.get(f"{dev.base}/asyncapi.json") as response:
        asyncapi = await response.json()
    assert asyncapi["channels"]["users"]["address"] == "mercato.users"
    assert asyncapi["channels"]["registrations"]["x-internal"] is True
    assert asyncapi["components"]["schemas"]["user_registered_v1"] == schema

    consumer = AIOKafkaConsumer(
        "mercato.users", bootstrap_servers=dev.kafka, auto_offset_reset="earliest",
        group_id=f"data-team-{user_id}",
    )
    await consumer.start()
    try:
        record = None
        deadline = time.monotonic() + 15
        while record is None and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                record = next((r for r in records if r.key == user_id.encode()), record)
    finally:
        await consumer.stop()
    assert record is not None, "user.registered not found on mercato.users"
    value = orjson.loads(record.value)
    jsonschema.validate(value, schema, format_checker=jsonschema.FormatChecker())
    assert dict(record.headers)["ce_specversion"] == b"1.0"


def test_ctrl_c_stops_everything_and_a_restart_keeps_the_data(
    dev: DevStack, data_dir: Path
) -> None:
    assert stop_dev(dev) == 0
    port = int(dev.base.rsplit(":", 1)[1])
    again = start_dev(data_dir, port)
    try:

        async def login() -> int:
            async with aiohttp.ClientSession() as session, session.post(
                f"{again.base}/v1/auth/login",
                json={"email": "ws@example.com", "password": "correct horse battery"},
            ) as response:
                return response.status

        assert asyncio.run(login()) == 200
    finally:
        assert stop_dev(again) == 0
