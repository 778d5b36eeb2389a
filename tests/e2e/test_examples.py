"""The scripts in ``examples/`` (quoted by the README) run as a user runs them, against the stack.

One worker and one ``mercato gateway`` process on the session's embedded services; each
example is a subprocess given the gateway and broker as a user would (environment).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import sys
import textwrap
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
from mercato.embedded import Endpoints
from streams.admin import ensure_topics
from tests.conftest import make_settings
from tests.support.gateways import running_gateway
from tests.support.processes import running_worker

pytestmark = pytest.mark.e2e
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PASSWORD = "correct horse battery"
ENVELOPE_KEYS = {"id", "type", "version", "key", "occurredAt", "source", "correlationId",
                 "causationId", "data"}
RUN_SECONDS = 100.0


@dataclasses.dataclass(frozen=True)
class World:
    """The stack the examples are pointed at."""

    settings: Settings
    base: str
    cwd: Path

    def env(self) -> dict[str, str]:
        """What a user exports: the gateway, the broker and the topic prefix."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MERCATO_")}
        env.update(MERCATO_URL=self.base, MERCATO_KAFKA_URL=self.settings.kafka_url,
                   MERCATO_TOPIC_PREFIX=self.settings.topic_prefix)
        return env


@dataclasses.dataclass(frozen=True)
class Ran:
    """An example's exit status and output."""

    code: int
    out: str
    err: str

    def lines(self) -> list[dict[str, Any]]:
        """Stdout's JSON lines."""
        return [json.loads(line) for line in self.out.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
async def world(
    stack: Endpoints, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    """A worker and a gateway process on the session's services, with their own topics."""
    data = tmp_path_factory.mktemp("examples")
    settings = dataclasses.replace(make_settings(stack, data), worker_session_timeout=20.0)
    await ensure_topics(settings)
    cwd = data / "cwd"  # no .mercato/ports.json here: the examples use what they are given
    cwd.mkdir()
    async with (
        running_worker(settings, data / "worker.log"),
        running_gateway(settings, free_port(), data / "gateway.log") as base,
    ):
        yield World(settings, base, cwd)


async def _start(world_env: dict[str, str], cwd: Path, script: str,
                 *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLES / script), *args, env=world_env, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )


async def _finish(proc: asyncio.subprocess.Process, out: bytes = b"", err: bytes = b"") -> Ran:
    """Wait for the example's end (bounded); ``out``/``err``: what was already read."""
    try:
        rest, rest_err = await asyncio.wait_for(proc.communicate(), RUN_SECONDS)
    except TimeoutError:
        proc.kill()
        rest, rest_err = await proc.communicate()
        raise AssertionError(f"example still running after {RUN_SECONDS:g}s: "
                             f"{(out + rest).decode()}\n{(err + rest_err).decode()}") from None
    assert proc.returncode is not None
    return Ran(proc.returncode, (out + rest).decode(), (err + rest_err).decode())


async def _read_until(
    proc: asyncio.subprocess.Process, stream: asyncio.StreamReader | None, marker: bytes
) -> bytes:
    """Lines of a running example's ``stream`` up to the one holding ``marker`` (bounded)."""
    assert stream is not None
    seen = b""
    try:
        while marker not in seen:
            line = await asyncio.wait_for(stream.readline(), 60)
            assert line, f"the example ended before {marker!r}: {seen.decode()}"
            seen += line
    except BaseException:
        proc.kill()
        await proc.communicate()
        raise
    return seen


async def run(world: World, script: str, *args: str) -> Ran:
    """Run an example to its end (bounded)."""
    return await _finish(await _start(world.env(), world.cwd, script, *args))


async def _signup(world: World) -> tuple[str, str, str]:
    """(email, user id, access token) of a fresh account; a 503 while warming is retried."""
    email = f"follower-{uuid.uuid4().hex[:8]}@example.com"
    body = {"email": email, "password": PASSWORD, "name": "Follower"}
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession(world.base) as http:
        while True:
            async with http.post("/v1/auth/register", json=body) as response:
                if response.status == 201:
                    break
                assert response.status == 503, await response.text()
                assert time.monotonic() < deadline, "the worker answered 503 for a minute"
            await asyncio.sleep(1)
    return await _login(world, email)


async def _login(world: World, email: str) -> tuple[str, str, str]:
    """(email, user id, access token) of a signed-in account."""
    async with aiohttp.ClientSession(world.base) as http:
        async with http.post("/v1/auth/login", json={"email": email, "password": PASSWORD}) as r:
            assert r.status == 200, await r.text()
            token = (await r.json())["accessToken"]
        async with http.get("/v1/users/me", headers={"Authorization": f"Bearer {token}"}) as r:
            user_id = (await r.json())["userId"]
    return email, user_id, token


async def _rename(world: World, token: str, name: str) -> None:
    async with aiohttp.ClientSession(world.base) as http, http.patch(
        "/v1/users/me", json={"name": name}, headers={"Authorization": f"Bearer {token}"}
    ) as response:
        assert response.status == 200, await response.text()


async def _follow_replay_then_live(world: World, script: str) -> list[dict[str, Any]]:
    """Run a follower on a new user's channel: the registration replayed, a rename live."""
    email, user_id, token = await _signup(world)
    proc = await _start(world.env(), world.cwd, script, "--email", email, "--password",
                        PASSWORD, "--max-events", "2", "--timeout", "90")
    # The rename is sent only once the follower printed the replayed registration.
    seen = await _read_until(proc, proc.stdout, b"user.registered")
    await _rename(world, token, "Renamed Follower")
    ran = await _finish(proc, seen)
    assert ran.code == 0, ran
    assert "user:" + user_id in ran.out
    return ran.lines()


def _event_types(frames: list[dict[str, Any]]) -> list[str]:
    """The event types a follower printed: WebSocket frames or SSE ``{event, id, data}``."""
    ws = [f["event"]["type"] for f in frames if f.get("type") == "event"]
    sse = [f["event"] for f in frames if "type" not in f and f["event"] not in ("ready", "close")]
    return ws + sse


async def test_the_rest_tour_completes_an_order_and_downloads_the_file(world: World) -> None:
    ran = await run(world, "rest_tour.py")
    assert ran.code == 0, ran
    assert "EMAIL_TAKEN" in ran.out
    assert ": pending -> stock_reserved -> paid -> delivered -> completed" in ran.out
    assert "'Field guide\\nChapter 1: the marketplace\\n'" in ran.out
    assert ran.out.rstrip().endswith("tour complete")


async def test_the_websocket_follower_replays_then_follows_live(world: World) -> None:
    frames = await _follow_replay_then_live(world, "follow_ws.py")
    assert frames[0]["type"] == "subscribed"
    events = [f for f in frames if f["type"] == "event"]
    assert [e["event"]["type"] for e in events] == ["user.registered", "user.profile_updated"]
    assert events[1]["event"]["data"]["name"] == "Renamed Follower"
    assert all(e["id"] for e in events)


async def test_the_sse_follower_replays_then_follows_live(world: World) -> None:
    frames = await _follow_replay_then_live(world, "follow_sse.py")
    assert frames[0]["event"] == "ready"
    events = [f for f in frames if f["event"] not in ("ready", "close")]
    assert [e["event"] for e in events] == ["user.registered", "user.profile_updated"]
    assert [e["data"]["event"]["type"] for e in events] == [e["event"] for e in events]
    assert all(e["id"] for e in events)


@pytest.mark.parametrize("script", ["follow_ws.py", "follow_sse.py"])
async def test_a_follower_signs_in_again_and_resumes_when_its_session_ends(
    world: World, script: str
) -> None:
    email, user_id, _ = await _signup(world)
    proc = await _start(world.env(), world.cwd, script, "--email", email, "--password",
                        PASSWORD, "--max-events", "3", "--timeout", "90")
    out = await _read_until(proc, proc.stdout, b"user.registered")
    # A role change revokes the user's tokens: the stream ends with 4401 within seconds.
    admin = TokenService(world.settings).issue_access(f"admin-{uuid.uuid4().hex}", ["admin"])
    async with aiohttp.ClientSession(world.base) as http, http.put(
        f"/v1/users/{user_id}/roles", json={"roles": ["buyer", "seller"]},
        headers={"Authorization": f"Bearer {admin}"},
    ) as response:
        assert response.status == 200, await response.text()
    err = await _read_until(proc, proc.stderr, b"closed with 4401")
    # Sent only after the close, so the third event can only reach a resumed stream.
    _, _, token = await _login(world, email)
    await _rename(world, token, "Resumed Follower")
    ran = await _finish(proc, out, err)
    assert ran.code == 0, ran
    assert "resuming" in ran.err
    # Resumed after the last id printed: nothing lost, nothing twice.
    assert _event_types(ran.lines()) == [
        "user.registered", "user.roles_changed", "user.profile_updated"]


async def test_the_kafka_consumer_prints_documented_envelopes(world: World) -> None:
    await _signup(world)  # at least one record on the users topic
    ran = await run(world, "consume_kafka.py", "--topic", "users", "--max-records", "1",
                    "--timeout", "60")
    assert ran.code == 0, ran
    [record] = ran.lines()
    assert record["topic"] == world.settings.topic("users")
    envelope = record["envelope"]
    assert set(envelope) == ENVELOPE_KEYS
    assert envelope["type"].startswith("user.")
    assert (record["ceType"], record["key"]) == (envelope["type"], envelope["key"])


@pytest.mark.parametrize("script", ["follow_ws.py", "follow_sse.py"])
async def test_a_follower_without_an_account_says_how_to_get_one(
    world: World, script: str
) -> None:
    ran = await run(world, script, "--max-events", "1", "--timeout", "30")  # no demo accounts
    assert ran.code == 1, ran
    assert "INVALID_CREDENTIALS" in ran.err
    assert "make run ARGS=--demo" in ran.err
    assert "Traceback" not in ran.err


@pytest.mark.parametrize("script", ["rest_tour.py", "follow_ws.py", "follow_sse.py",
                                    "consume_kafka.py"])
async def test_an_example_without_a_stack_says_how_to_start_one(
    script: str, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens there
    env = {k: v for k, v in os.environ.items() if not k.startswith("MERCATO_")}
    env.update(MERCATO_URL=f"http://127.0.0.1:{port}", MERCATO_KAFKA_URL=f"kafka://127.0.0.1:{port}")
    ran = await _finish(await _start(env, tmp_path, script))
    assert ran.code == 2, ran
    assert "make run" in ran.err
    assert "Traceback" not in ran.err


REPO = EXAMPLES.parent
FENCE = re.compile(r"```python\n(.*?)```", re.S)
# Inline links and reference definitions; code is not a link, so it is removed first.
LINK = re.compile(r"\]\(([^)\s]+)\)|^\[[^\]]+\]:\s*(\S+)", re.M)
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)
URL = re.compile(r"[a-z][a-z0-9+.-]*://[^\s)>\]]+")


def _quoted_in(block: str, script: Path) -> bool:
    """Whether ``block`` is a run of ``script``'s lines (dedented as a whole)."""
    lines, wanted = script.read_text().splitlines(), block.rstrip("\n")
    size = len(wanted.splitlines())
    return any(textwrap.dedent("\n".join(lines[i:i + size])) == wanted
               for i in range(len(lines) - size + 1))


def test_the_readme_quotes_the_examples_as_they_are() -> None:
    readme = (REPO / "README.md").read_text()
    blocks = list(FENCE.finditer(readme))
    assert len(blocks) >= 4
    for block in blocks:
        # The script a block quotes is the last one the text names before it.
        named = re.findall(r"examples/(\w+\.py)", readme[:block.start()])
        assert named, f"a Python block names no example: {block[1][:80]}"
        assert _quoted_in(block[1], EXAMPLES / named[-1]), (
            f"README quotes examples/{named[-1]} out of date:\n{block[1]}")


@pytest.mark.parametrize("doc", ["README.md", "docs/api.md"])
def test_the_docs_link_only_inside_the_repo(doc: str) -> None:
    path = REPO / doc
    prose = CODE.sub("", path.read_text())
    for url in URL.findall(prose):
        assert url.startswith("http://127.0.0.1:"), f"{doc} points outside the repo: {url}"
    for link in (a or b for a, b in LINK.findall(prose)):
        if URL.match(link):
            continue
        target = (path.parent / link.split("#")[0]).resolve()
        assert target.is_relative_to(REPO), f"{doc} links outside the repo: {link}"
        assert target.exists(), f"{doc} links to a missing {link}"
