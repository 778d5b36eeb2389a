"""A push connection's sink that records what the connection sends, for hub-level tests.

``gateway.push.connection.Sink`` is the transport's side of a connection; this one keeps
the frames as objects (in delivery order) instead of writing bytes to a socket, and can
play a client that stopped reading (``stalled``: nothing written is ever taken).
"""

from __future__ import annotations

import asyncio

from gateway.identity.auth import Principal
from gateway.push.connection import Connection, Outgoing
from gateway.push.hub import PushHub

FRAME = b"."  # one byte per frame, so a test's byte bound counts frames


class RecordingSink:
    """Frames as the connection emitted them; ``take`` reads them in order."""

    def __init__(self, *, stalled: bool = False) -> None:
        self.items: list[Outgoing] = []
        self.closed_with: tuple[int, str] | None = None
        self.writes = 0
        self.stalled = stalled
        self._written = 0
        self._read = 0
        self._arrived = asyncio.Event()

    def encode(self, out: Outgoing) -> bytes:
        self.items.append(out)
        self._arrived.set()
        return FRAME

    def buffered(self) -> int:
        return self._written if self.stalled else 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        self._written += len(data)

    def keep_alive(self, now: float, quiet: float) -> None:
        return None

    def close(self, code: int, reason: str) -> None:
        self.closed_with = (code, reason)

    async def take(self, count: int) -> list[Outgoing]:
        """The next ``count`` frames, once the connection has emitted them (1 s at most)."""
        async with asyncio.timeout(1.0):
            while len(self.items) - self._read < count:
                self._arrived.clear()
                await self._arrived.wait()
        out = self.items[self._read:self._read + count]
        self._read += count
        return out

    async def rest(self) -> list[Outgoing]:
        """Every frame not taken yet, after letting the loop flush."""
        await asyncio.sleep(0)
        out = self.items[self._read:]
        self._read = len(self.items)
        return out


def open_recorded(hub: PushHub, principal: Principal, *, stalled: bool = False
                  ) -> tuple[Connection, RecordingSink]:
    """A connection on ``hub`` whose frames are recorded."""
    sink = RecordingSink(stalled=stalled)
    return hub.open(principal, sink), sink
