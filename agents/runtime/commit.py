"""Group commit: the decided records of one partition carry out their effects together.

A record is decided with its effects held (``agents.runtime.effects.held``): table
writes happen at once, MongoDB writes and sends wait. It then joins its partition's
``CommitGroup``. Whatever records are waiting when the group's flusher comes round
are committed as one: one unordered ``bulk_write`` per collection, every record handed
to the producer, the broker's acks awaited once (``agents.runtime.effects.commit``).
Each waiting record then finishes and is acked (in offset order, by
``agents.runtime.lanes``), so no offset is committed before its effects are durable.

Nothing waits to fill a batch: an idle partition's record is committed at once, and
under load the records decided while one flush is in flight form the next, so batches
grow with the load (up to ``limit``). One key's records never share a flush (its next
record starts only once the previous one has finished), which is what keeps redelivery
exact: a decider that recovers by re-running the last decision of a key (the saga) always
finds the unflushed one last.

A flush that fails is retried record by record, so one record's bad write (a document
too large, say) fails that record alone; each caller retries or dead-letters its own
record as usual (``agents.runtime.resilience.guarded``). A flush that failed for want of
MongoDB or the broker (``resilience.is_outage``) fails every record at once instead:
retrying them one by one would only wait out the same timeout once per record.
"""

from __future__ import annotations

import asyncio
import contextlib

from agents.runtime.effects import Held, commit
from agents.runtime.resilience import is_outage

# Records committed in one flush at most: bounds one bulk_write and one produce burst.
FLUSH_LIMIT = 256


class CommitGroup:
    """The records of one partition waiting to be committed, and the task committing them."""

    def __init__(self, *, limit: int = FLUSH_LIMIT) -> None:
        self._limit = limit
        self._waiting: list[tuple[Held, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def commit(self, effects: Held) -> None:
        """Commit ``effects`` with whatever else is waiting; returns once they are durable."""
        if not effects:
            return
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((effects, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_waiting())
        await done

    async def aclose(self) -> None:
        """Stop flushing; records still waiting fail (they are not acked: redelivered)."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        for _, done in self._waiting:
            if not done.done():
                done.cancel()
        self._waiting.clear()

    async def _flush_waiting(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[: self._limit], self._waiting[self._limit:]
            try:
                await _commit_batch(batch)
            except asyncio.CancelledError:
                for _, done in batch:
                    done.cancel()
                raise


async def _commit_batch(batch: list[tuple[Held, asyncio.Future[None]]]) -> None:
    try:
        await commit([effects for effects, _ in batch])
    except Exception as exc:
        if len(batch) == 1 or is_outage(exc):
            for _, done in batch:
                _settle(done, exc)
            return
        # Find the record at fault: each alone (their effects are idempotent).
        for n, (effects, done) in enumerate(batch):
            try:
                await commit([effects])
            except Exception as alone:
                if is_outage(alone):  # gone meanwhile: the rest would wait out the same
                    for _, rest in batch[n:]:
                        _settle(rest, alone)
                    return
                _settle(done, alone)
            else:
                _settle(done, None)
        return
    for _, done in batch:
        _settle(done, None)


def _settle(done: asyncio.Future[None], error: BaseException | None) -> None:
    if done.done():
        return  # its record was cancelled meanwhile
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
