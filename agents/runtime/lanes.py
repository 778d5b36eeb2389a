"""Records of one partition in flight together: concurrent across keys, in order per key.

An agent whose state is keyed like its records (the saga by order id, payments by
order id, inventory by product id) need not finish one order's round trips (MongoDB,
broker acks) before it starts the next order's record. ``KeyLanes`` runs each record
as a task that first waits for the previous record with the same key (a record
without a key waits for everything before it, and everything after waits for it),
bounds how many are in flight, and acks records strictly in offset order once each
has finished. So the committed offset never passes a record whose effects are not
durable, and one key's records are applied in order exactly as before.

On stop the records in flight get a short grace period to finish and be acked.
A record whose task fails (only possible when ``guarded`` could not even
dead-letter it, or on cancellation) stops the lanes: nothing after it is acked,
no record not yet started starts, and the next ``submit`` raises the error.
Redelivery then repeats every record not acked; effects are idempotent.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

# On stop (a rebalance, shutdown), how long records in flight may take to finish.
CLOSE_GRACE_SECONDS = 5.0


class LanesHalted(RuntimeError):
    """An earlier record failed; this one was not started (it will be redelivered)."""


class KeyLanes:
    """Concurrent, per-key ordered, offset-order-acked processing of one stream's events."""

    def __init__(self, stream: Any, *, limit: int) -> None:
        self._stream = stream
        self._room = asyncio.Semaphore(limit)
        self._in_flight: collections.deque[tuple[Any, asyncio.Task[object]]] = collections.deque()
        self._tails: dict[bytes, asyncio.Task[object]] = {}
        self._barrier: asyncio.Task[object] | None = None
        self._progress = asyncio.Event()
        self._failure: BaseException | None = None
        self._acker: asyncio.Task[object] | None = None

    async def submit(self, event: Any, process: Callable[[], Awaitable[object]]) -> None:
        """Start ``process`` for ``event`` once there is room (and its key's turn comes)."""
        if self._acker is None:
            self._acker = asyncio.create_task(self._ack_in_order())
        self._raise_failure()
        await self._room.acquire()
        key: bytes | None = event.message.key
        if key is None:
            before = [task for _, task in self._in_flight]
        else:
            before = [t for t in (self._barrier, self._tails.get(key)) if t is not None]
        task = asyncio.create_task(self._run(before, process))
        task.add_done_callback(self._finished)
        self._in_flight.append((event, task))
        if key is None:
            self._barrier = task
        else:
            self._tails[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))

    async def aclose(self, grace: float = CLOSE_GRACE_SECONDS) -> None:
        """Stop: let what is in flight finish for up to ``grace`` seconds and ack it.

        Whatever is still running then is cancelled and not acked: it is redelivered.
        """
        running = [task for _, task in self._in_flight if not task.done()]
        try:
            if running:
                # Faust cancels an actor it stops: then the grace ends at once.
                await asyncio.wait(running, timeout=grace)
        finally:
            tasks = [task for _, task in self._in_flight]
            if self._acker is not None:
                tasks.append(self._acker)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._ack_done()
            self._in_flight.clear()
            self._tails.clear()

    async def _run(
        self, before: list[asyncio.Task[object]], process: Callable[[], Awaitable[object]]
    ) -> None:
        try:
            if before:
                await asyncio.wait(before)
            if self._failure is not None or any(_failed(task) for task in before):
                raise LanesHalted("an earlier record of this partition failed")
            await process()
        finally:
            self._room.release()

    def _finished(self, task: asyncio.Task[object]) -> None:
        if self._failure is None and _failed(task):
            self._failure = task.exception() if not task.cancelled() else LanesHalted(
                "a record of this partition was cancelled")
        self._progress.set()

    def _forget(self, key: bytes, task: asyncio.Task[object]) -> None:
        if self._tails.get(key) is task:
            del self._tails[key]

    async def _ack_in_order(self) -> None:
        while True:
            await self._progress.wait()
            self._progress.clear()
            await self._ack_done()

    async def _ack_done(self) -> None:
        while self._in_flight and self._in_flight[0][1].done():
            event, task = self._in_flight[0]
            if _failed(task):
                return  # never ack past a failed record
            self._in_flight.popleft()
            if task is self._barrier:
                self._barrier = None
            await self._stream.ack(event)

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure


def _failed(task: asyncio.Task[object]) -> bool:
    if not task.done():
        return False
    with contextlib.suppress(asyncio.CancelledError):
        return task.exception() is not None
    return True
