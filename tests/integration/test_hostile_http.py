"""What an attacker's hand-made bytes get from a real ``mercato gateway`` over raw sockets.

Every answer is Mercato's: problem+json with a stable code and a 4xx status, the edge's
headers (``Server: mercato``, no versions), nothing of the offending input echoed, and
no traceback in the gateway's log. These requests are built byte by byte because no
well-behaved client library would send them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest

from config import Settings
from gateway.http.serving import MAX_HEADERS, MAX_REQUEST_LINE
from mercato._procs import free_port
from mercato.embedded import Endpoints
from streams.admin import ensure_topics
from tests.conftest import make_settings
from tests.support.files import bearer, chunk_owners, mongo
from tests.support.gateways import running_gateway

pytestmark = pytest.mark.integration
HEADER_TIMEOUT = 1.0
# Planted in each hostile request; an answer that contains it echoed the input.
SECRET = "sk-live-DO-NOT-ECHO-0123456789"


@dataclasses.dataclass(frozen=True)
class Gateway:
    """A gateway process and where it listens."""

    settings: Settings
    host: str
    port: int

    def log(self) -> str:
        """Everything the gateway logged so far."""
        return (self.settings.data_dir / "gateway.log").read_text(errors="replace")


@dataclasses.dataclass(frozen=True)
class Answer:
    """A raw HTTP response."""

    status_line: str
    headers: dict[str, str]
    body: bytes

    @property
    def status(self) -> int:
        """The status code."""
        return int(self.status_line.split()[1])

    def problem(self) -> dict[str, Any]:
        """The problem+json body, checked to be one."""
        assert self.headers["content-type"].startswith("application/problem+json")
        body: dict[str, Any] = orjson.loads(self.body)
        assert body["status"] == self.status
        return body


@pytest.fixture(scope="module")
async def gateway(
    stack: Endpoints, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Gateway]:
    """One gateway process (no worker: nothing here gets as far as a command)."""
    base = make_settings(stack, tmp_path_factory.mktemp("hostile"))
    settings = dataclasses.replace(base, http_header_timeout=HEADER_TIMEOUT)
    await ensure_topics(settings)
    port = free_port()
    async with running_gateway(settings, port, settings.data_dir / "gateway.log"):
        yield Gateway(settings, "127.0.0.1", port)


@pytest.fixture(autouse=True)
def no_stack_and_no_echo_in_the_log(gateway: Gateway) -> Iterator[None]:
    """After each test: what it made the gateway log has no traceback and no echoed input."""
    before = len(gateway.log())
    yield
    logged = gateway.log()[before:]
    assert "Traceback" not in logged
    assert SECRET not in logged


async def exchange(gateway: Gateway, raw: bytes, *, wait: float = 20.0) -> Answer:
    """Send ``raw``, read until the server closes (or the response is complete)."""
    reader, writer = await asyncio.open_connection(gateway.host, gateway.port)
    try:
        writer.write(raw)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), wait)
        lines = head.decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await asyncio.wait_for(
            reader.readexactly(int(headers.get("content-length", "0"))), wait
        )
        return Answer(lines[0], headers, body)
    finally:
        writer.close()


def assert_mercato_answered(answer: Answer, *, status: int, code: str) -> None:
    """Mercato's headers, a problem with ``code``, and nothing of the input echoed."""
    assert answer.status == status, answer
    assert answer.problem()["code"] == code
    assert answer.headers["server"] == "mercato"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-request-id"]
    assert SECRET.encode() not in answer.body
    assert SECRET not in str(answer.headers)


def get(path: str, *headers: bytes) -> bytes:
    """A GET request with ``headers`` (raw lines)."""
    return b"\r\n".join([
        f"GET {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", *headers, b"Connection: close",
        b"", b"",
    ])


@pytest.mark.parametrize("path", ["/v1/users/me", "/v1/products"])
async def test_a_non_utf8_byte_in_a_bearer_token_is_invalid_token_not_500(
    gateway: Gateway, path: str
) -> None:
    answer = await exchange(gateway, get(path, b"Authorization: Bearer eyJ\xff\xfe." + b"x" * 20))
    if path == "/v1/users/me":
        assert_mercato_answered(answer, status=401, code="INVALID_TOKEN")
    else:
        # A public read ignores a token it cannot use... but it must never fail on it.
        assert answer.status == 200, answer


async def test_a_non_utf8_bearer_token_on_the_liveness_probe_is_not_500(gateway: Gateway) -> None:
    answer = await exchange(gateway, get("/health/live", b"Authorization: Bearer \xc3\x28abc"))
    assert answer.status == 200, answer


def multipart_with_filename(filename: bytes, boundary: bytes = b"b0und4ry") -> bytes:
    """A multipart body with one ``file`` part whose header carries ``filename`` raw."""
    return b"".join([
        b"--", boundary, b"\r\n",
        b'Content-Disposition: form-data; name="file"; filename="', filename, b'"\r\n',
        b"Content-Type: application/octet-stream\r\n\r\n",
        b"some bytes that must not be stored\r\n",
        b"--", boundary, b"--\r\n",
    ])


async def test_a_nul_byte_in_a_part_filename_is_400_and_stores_nothing(gateway: Gateway) -> None:
    settings = gateway.settings
    client, db = mongo(settings)
    try:
        before = await chunk_owners(db)
        body = multipart_with_filename(b"../../etc/passwd\x00.bin")
        token = bearer(settings, "mallory", "seller")["Authorization"]
        raw = b"\r\n".join([
            b"POST /v1/files HTTP/1.1", b"Host: 127.0.0.1",
            f"Authorization: {token}".encode(),
            b"Content-Type: multipart/form-data; boundary=b0und4ry",
            f"Content-Length: {len(body)}".encode(), b"Connection: close", b"", body,
        ])
        answer = await exchange(gateway, raw)
        assert_mercato_answered(answer, status=400, code="MALFORMED_REQUEST")
        assert await chunk_owners(db) == before
        assert await db["fs.files"].count_documents({}) == 0
        assert await db["files"].count_documents({}) == 0
    finally:
        await client.close()


async def test_a_100_kb_header_is_431(gateway: Gateway) -> None:
    answer = await exchange(gateway, get("/v1/products", b"X-Big: " + SECRET.encode() * 3500))
    assert_mercato_answered(answer, status=431, code="HEADERS_TOO_LARGE")


async def test_too_many_headers_is_431(gateway: Gateway) -> None:
    many = [f"X-H{i}: {SECRET}".encode() for i in range(MAX_HEADERS * 2)]
    answer = await exchange(gateway, get("/v1/products", *many))
    assert_mercato_answered(answer, status=431, code="HEADERS_TOO_LARGE")


async def test_a_79_kb_url_is_414(gateway: Gateway) -> None:
    path = "/v1/products?q=" + SECRET * (79 * 1024 // len(SECRET))
    assert len(path) > MAX_REQUEST_LINE
    answer = await exchange(gateway, get(path))
    assert_mercato_answered(answer, status=414, code="URI_TOO_LONG")


@pytest.mark.parametrize(
    "raw",
    [
        b"GET /v1/products?q=\xff\xfe" + SECRET.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"G\xc3\xa9T /v1/products HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /v1/products HTTP/1.1\r\nHost: x\r\nX-Nul: a\x00" + SECRET.encode() + b"\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + SECRET.encode() + b"\r\n\r\n",
    ],
    ids=["non-ascii-target", "non-ascii-method", "nul-in-header", "tls-hello"],
)
async def test_bytes_that_are_not_http_get_a_400_problem(gateway: Gateway, raw: bytes) -> None:
    answer = await exchange(gateway, raw)
    assert_mercato_answered(answer, status=400, code="MALFORMED_REQUEST")


async def test_a_connection_dripping_its_headers_is_closed_after_the_header_timeout(
    gateway: Gateway,
) -> None:
    reader, writer = await asyncio.open_connection(gateway.host, gateway.port)
    started = time.monotonic()
    try:
        writer.write(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        received = b""
        # Bounded: 30 drips; the server must give up long before the client does.
        for i in range(30):
            writer.write(f"X-Drip-{i}: 1\r\n".encode())
            try:
                await writer.drain()
                received = await asyncio.wait_for(reader.read(4096), 0.5)
            except (TimeoutError, ConnectionError):
                continue
            break
        assert received.startswith(b"HTTP/1.1 408 "), received
        assert b"REQUEST_TIMEOUT" in received
        assert await asyncio.wait_for(reader.read(), 5) == b""  # and closed
        assert time.monotonic() - started < 15
    finally:
        writer.close()


async def test_a_slow_but_steady_request_still_gets_its_answer(gateway: Gateway) -> None:
    # The deadline is per request head, and each request on a kept-alive connection gets
    # its own: two heads, each well within the timeout, both answered.
    reader, writer = await asyncio.open_connection(gateway.host, gateway.port)
    try:
        for _ in range(2):
            writer.write(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert head.startswith(b"HTTP/1.1 200 ")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            await asyncio.sleep(HEADER_TIMEOUT * 1.5)  # idle between requests is not a head
    finally:
        writer.close()


async def test_a_body_still_arriving_after_an_early_answer_is_not_a_slow_head(
    gateway: Gateway,
) -> None:
    # The edge answers 401 before reading the body; aiohttp then reads and discards the
    # rest. Those bytes are a body, however slowly they come, not the next request's head:
    # the connection stays usable and no stray 408 is written.
    reader, writer = await asyncio.open_connection(gateway.host, gateway.port)
    try:
        writer.write(b"PATCH /v1/users/me HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 300\r\n\r\n"
                     + b" " * 100)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 401 ")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        writer.write(b" " * 100)
        await asyncio.sleep(HEADER_TIMEOUT * 1.5)  # longer than a head may take
        writer.write(b" " * 100)
        writer.write(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await writer.drain()
        second = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert second.startswith(b"HTTP/1.1 200 "), second
    finally:
        writer.close()


async def test_refusals_are_logged_as_one_line_each(gateway: Gateway) -> None:
    before = len(gateway.log())
    answer = await exchange(gateway, get("/v1/products", b"X-Nul: a\x00b"))
    assert answer.status == 400
    assert "refused a malformed request: 400 MALFORMED_REQUEST" in gateway.log()[before:]
