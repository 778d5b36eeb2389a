"""The flag book: one per process, the whole ``config`` topic read at start, then followed.

Every gateway and worker holds one. ``start`` assigns every partition (no consumer group:
each process must see every flag), reads from the beginning up to the end offsets it
found and only then returns, so a process never answers with defaults a flag overrides;
a task then follows the topic, so a change applies everywhere within a fetch or two. A
tombstone (a record with no value) puts a flag back to its default.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from config import Settings
from streams.envelope import Envelope, EnvelopeError, format_time
from streams.events.config import FlagSet
from streams.flags.rules import DEFAULTS, Caller, Flag, default
from streams.follow import assign_whole_topic
from streams.registry import spec_for_model

log = logging.getLogger(__name__)
FLAG_SET = spec_for_model(FlagSet).type
FOLLOW_RETRY_SECONDS = 1.0


class FollowerDead(Exception):
    """The task following the ``config`` topic ended: the flags no longer change."""


class FlagBook:
    """The flags as the ``config`` topic last set them, and who each one is on for."""

    def __init__(self, settings: Settings, *, client: str) -> None:
        self._settings = settings
        self._client = client
        self.topic = settings.topic("config")
        self._flags: dict[str, Flag] = {}
        # Next offset to read per partition; what ``applied`` waits on.
        self._next: dict[int, int] = {}
        self._progress = asyncio.Condition()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.loaded = False
        self.invalid_records = 0
        # Fetches failed in a row while following, and the last failure.
        self.follow_failures = 0
        self.follow_error: str | None = None

    # -- reading --------------------------------------------------------------------------

    def flag(self, name: str) -> Flag:
        """Flag ``name`` as set on the topic, or its default."""
        return self._flags.get(name) or default(name)

    def enabled(self, name: str, caller: Caller | str | None = None) -> bool:
        """Whether flag ``name`` is on for ``caller`` (``rules.Flag.on_for``)."""
        return self.flag(name).on_for(caller)

    def flags(self) -> dict[str, Flag]:
        """Every built-in flag and every flag set on the topic, by name."""
        names = sorted({*DEFAULTS, *self._flags})
        return {name: self.flag(name) for name in names}

    def is_set(self, name: str) -> bool:
        """Whether the topic holds a state for ``name`` (else it has its default)."""
        return name in self._flags

    # -- applying records ---------------------------------------------------------------

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Take one ``config`` record: a flag's new state, or a tombstone resetting it."""
        if key is None:
            self.invalid_records += 1
            return
        name = key.decode("utf-8", "replace")
        if value is None:
            self._flags.pop(name, None)
            self._noted(name)
            return
        try:
            envelope = Envelope.decode(value)
            if envelope.type != FLAG_SET:
                raise EnvelopeError(f"unexpected type {envelope.type!r}")
            state = envelope.payload(FlagSet)
        except (EnvelopeError, ValueError) as exc:
            # One bad record must not stop every process from following the others.
            self.invalid_records += 1
            log.warning("unreadable config record of %s ignored: %s", name, exc)
            return
        roles = frozenset(state.roles) if state.roles is not None else None
        self._flags[name] = Flag(
            name, state.enabled, state.rollout_percent, roles, state.updated_by,
            format_time(state.updated_at),
        )
        self._noted(name)

    def _noted(self, name: str) -> None:
        if self.loaded:
            flag = self.flag(name)
            log.info("feature flag changed: %s", name, extra={
                "flag": name, "enabled": flag.enabled, "rolloutPercent": flag.rollout_percent,
                "roles": sorted(flag.roles) if flag.roles is not None else None,
            })

    async def applied(self, partition: int, offset: int) -> None:
        """Return once the record at ``partition``/``offset`` was applied (bound the wait)."""
        async with self._progress:
            await self._progress.wait_for(lambda: self._next.get(partition, 0) > offset)

    # -- the consumer ---------------------------------------------------------------------

    async def start(self) -> None:
        """Read the topic up to its current end, then follow it in a task of its own."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap,
            group_id=None,
            enable_auto_commit=False,
            client_id=f"{self._settings.app_id}-flags-{self._client}-{uuid.uuid4().hex[:6]}",
        )
        await consumer.start()
        try:
            tps = await assign_whole_topic(consumer, self.topic)
            await consumer.seek_to_beginning(*tps)
            ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
            await self._load(consumer, ends)
        except BaseException:
            await consumer.stop()
            raise
        self.loaded = True
        log.info("feature flags loaded", extra={"flags": sorted(self._flags)})
        self._consumer = consumer
        self._task = asyncio.create_task(self._follow(consumer), name="flag-book")

    async def _load(self, consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> None:
        pending = {tp for tp, end in ends.items() if end > 0}
        for tp in ends:
            self._next[tp.partition] = 0
        while pending:
            await self._take(await consumer.getmany(*pending, timeout_ms=500))
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            try:
                await self._take(await consumer.getmany(timeout_ms=1000, max_records=500))
            except Exception as exc:
                # Whatever failed (aiokafka reconnects by itself after a KafkaError), the
                # task must not end: with it every flag would freeze without a word. It
                # pauses, tries again, and readiness shows the failures meanwhile.
                self.follow_failures += 1
                self.follow_error = repr(exc)
                log.warning("config consumer error, retrying", exc_info=exc,
                            extra={"error": repr(exc), "failures": self.follow_failures})
                await asyncio.sleep(FOLLOW_RETRY_SECONDS)
                continue
            self.follow_failures = 0

    def follower(self) -> dict[str, Any]:
        """How following goes, for readiness: raises ``FollowerDead`` once the task ended."""
        if self._task is None or self._task.done():
            raise FollowerDead("the flag book stopped following the config topic; "
                               "flags are frozen until the process restarts")
        if self.follow_failures:
            return {"failures": self.follow_failures, "lastError": self.follow_error}
        return {}

    async def _take(self, batches: dict[TopicPartition, list[Any]]) -> None:
        if not batches:
            return
        for tp, records in batches.items():
            for record in records:
                self.apply(record.key, record.value)
                self._next[tp.partition] = record.offset + 1
        async with self._progress:
            self._progress.notify_all()

    async def ended(self) -> None:
        """Return when the following task ends (it ends only on a failure it cannot retry)."""
        if self._task is not None:
            await asyncio.wait({self._task})

    async def stop(self) -> None:
        """Stop following and close the consumer."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})
            if not self._task.cancelled() and self._task.exception() is not None:
                log.error("flag book task failed", exc_info=self._task.exception())
            self._task = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None


@contextlib.asynccontextmanager
async def following(book: FlagBook) -> AsyncIterator[FlagBook]:
    """Run ``book`` (loaded, then following) for the duration of the block."""
    await book.start()
    try:
        yield book
    finally:
        await book.stop()

