"""Blocking "does it really answer?" checks for the embedded services.

They are synchronous on purpose: ``EmbeddedStack.start()`` may be called from a
pytest fixture or a CLI before any event loop exists. Each returns normally when
the server answered properly and raises ``OSError``/``ValueError`` otherwise.
"""

from __future__ import annotations

import socket
import struct

_API_VERSIONS = 18
_METADATA = 3


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("connection closed mid-response")
        chunks += chunk
    return bytes(chunks)


def _kafka_call(sock: socket.socket, api_key: int, correlation: int, body: bytes) -> bytes:
    client_id = b"mercato-probe"
    header = struct.pack(">hhih", api_key, 0, correlation, len(client_id)) + client_id
    request = header + body
    sock.sendall(struct.pack(">i", len(request)) + request)
    (size,) = struct.unpack(">i", _recv_exact(sock, 4))
    response = _recv_exact(sock, size)
    (got,) = struct.unpack(">i", response[:4])
    if got != correlation:
        raise ValueError(f"kafka answered correlation id {got}, expected {correlation}")
    return response[4:]


def kafka(host: str, port: int, timeout: float) -> None:
    """ApiVersions answers without error and Metadata lists at least one broker."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        versions = _kafka_call(sock, _API_VERSIONS, 1, b"")
        (error,) = struct.unpack(">h", versions[:2])
        if error:
            raise ValueError(f"kafka ApiVersions error {error}")
        # Metadata v0 with an empty topic list: we only need the broker list.
        metadata = _kafka_call(sock, _METADATA, 2, struct.pack(">i", 0))
        (brokers,) = struct.unpack(">i", metadata[:4])
        if brokers < 1:
            raise ValueError("kafka metadata lists no broker yet")


def mongo(url: str, timeout: float) -> None:
    """The server answers ``ping``."""
    from pymongo import MongoClient  # here: pymongo costs every `mercato` command 0.1 s

    ms = max(1, int(timeout * 1000))
    client: MongoClient[dict[str, object]] = MongoClient(
        url, serverSelectionTimeoutMS=ms, connectTimeoutMS=ms, socketTimeoutMS=ms
    )
    try:
        client.admin.command("ping")
    finally:
        client.close()


def redis(host: str, port: int, timeout: float) -> None:
    """The server answers ``PING`` with ``+PONG`` (not ``-LOADING`` while replaying the AOF)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(b"PING\r\n")
        answer = sock.recv(64)
    if not answer.startswith(b"+PONG"):
        raise ValueError(f"redis answered {answer!r}")
