"""Scope generations read for many requests in one Redis round trip.

The invariant every caller relies on: the read that answers a caller is *sent after the
caller asked*. A caller joins the next read, never one already sent; that read closes
its list of names just before it is sent. So a drop that completed before a request
arrived (the writing gateway drops before it answers the PATCH; every gateway's push hub
drops before it fans the event out) is seen by that request, as with one read per
request, while a busy gateway pays one round trip for all the reads that queued up
during the previous one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

# Reads the values of these names, None for a name that is not set.
Read = Callable[[list[str]], Awaitable[Sequence[bytes | None]]]
# A generation never dropped (or whose key expired) is 0, as the drop's INCR starts it.
UNSET = b"0"


class GenerationReads:
    """``current(name)``: the value of ``name`` read after the call, shared with others."""

    def __init__(self, read: Read) -> None:
        self._read = read
        # The callers of the next read. A future each, not one shared: a caller that
        # goes away cancels its own wait only (and costs less than a shield per caller).
        self._waiting: list[tuple[str, asyncio.Future[bytes]]] = []
        self._flight: asyncio.Task[None] | None = None
        self.sent = 0  # reads sent: the round trips all the callers shared

    async def current(self, name: str) -> bytes:
        """The value of ``name`` from a read sent after this call (raises what it raised)."""
        waiter: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting.append((name, waiter))
        if self._flight is None:
            self._flight = asyncio.ensure_future(self._send())
        return await waiter

    async def _send(self) -> None:
        # Each pass takes the callers queued so far; callers arriving while its read is
        # out queue for the next pass, so no caller is answered by a read older than it.
        try:
            while self._waiting:
                waiting, self._waiting = self._waiting, []
                names = list({name: None for name, _ in waiting})
                self.sent += 1
                try:
                    values = await self._read(names)
                    answers = {
                        n: UNSET if v is None else v
                        for n, v in zip(names, values, strict=True)
                    }
                except Exception as exc:  # the callers decide (a Redis error reads through)
                    for _, waiter in waiting:
                        if not waiter.done():
                            waiter.set_exception(exc)
                    continue
                except asyncio.CancelledError:
                    for _, waiter in waiting:
                        waiter.cancel()
                    raise
                for name, waiter in waiting:
                    if not waiter.done():  # its caller went away
                        waiter.set_result(answers[name])
        finally:
            self._flight = None

    async def aclose(self) -> None:
        """Cancel the read under way (shutdown); its callers see the cancellation."""
        flight = self._flight
        if flight is not None:
            flight.cancel()
            await asyncio.wait({flight})  # its outcome is its callers'; this only waits
        for _, waiter in self._waiting:
            waiter.cancel()
        self._waiting = []
