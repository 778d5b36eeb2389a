"""Reading a channel's past events back from the push topic, bounded.

A replay reads one partition from ``after + 1`` through ``through`` with a
short-lived consumer (manual assignment, no group, no commits) and keeps the
records whose key is one of the requested channels. It stops after
``MAX_REPLAY_EVENTS`` matching events, ``MAX_REPLAY_SCAN`` scanned records or
``REPLAY_TIMEOUT`` seconds; the result then says ``truncated`` and the client
is told (``REPLAY_TRUNCATED``) to re-sync from the REST API. What was replayed
is always a gap-free prefix, so the last id received is a valid resume point.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from config import Settings
from gateway.push.events import PushEvent, to_event
from streams.envelope import EnvelopeError

log = logging.getLogger(__name__)

MAX_REPLAY_EVENTS = 1000
MAX_REPLAY_SCAN = 50_000
REPLAY_TIMEOUT = 5.0


@dataclasses.dataclass(frozen=True, slots=True)
class ReplayResult:
    """The replayed events, oldest first, and whether the replay stopped early."""

    events: tuple[PushEvent, ...]
    truncated: bool


class Replayer(Protocol):
    """Reads ``channels``' events of ``partition`` in ``(after, through]``."""

    async def __call__(
        self, partition: int, after: int, through: int, channels: frozenset[str]
    ) -> ReplayResult: ...


class KafkaReplayer:
    """A ``Replayer`` that reads the push topic with a throwaway consumer."""

    def __init__(
        self,
        settings: Settings,
        *,
        max_events: int = MAX_REPLAY_EVENTS,
        max_scan: int = MAX_REPLAY_SCAN,
        timeout: float = REPLAY_TIMEOUT,
    ) -> None:
        self._settings = settings
        self._topic = settings.topic("push")
        self._max_events = max_events
        self._max_scan = max_scan
        self._timeout = timeout

    async def __call__(
        self, partition: int, after: int, through: int, channels: frozenset[str]
    ) -> ReplayResult:
        """Replay ``(after, through]`` of ``partition`` for ``channels``."""
        events: list[PushEvent] = []
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id=f"{self._settings.app_id}-push-replay-{uuid.uuid4().hex[:8]}",
        )
        try:
            async with asyncio.timeout(self._timeout):
                await consumer.start()
                truncated = await self._scan(consumer, partition, after, through, channels, events)
        except (TimeoutError, KafkaError) as exc:
            log.warning(
                "push replay stopped early", extra={"partition": partition, "error": repr(exc)}
            )
            truncated = True
        finally:
            await consumer.stop()
        return ReplayResult(tuple(events), truncated)

    async def _scan(
        self,
        consumer: Any,
        partition: int,
        after: int,
        through: int,
        channels: frozenset[str],
        events: list[PushEvent],
    ) -> bool:
        tp = TopicPartition(self._topic, partition)
        consumer.assign([tp])
        first: int = (await consumer.beginning_offsets([tp]))[tp]
        # Records between the resume point and the start of retention are gone: a gap.
        expired = after >= 0 and after + 1 < first
        start = max(after + 1, first)
        if start > through:
            return expired
        consumer.seek(tp, start)
        scanned = 0
        while True:
            batch = await consumer.getmany(tp, timeout_ms=500, max_records=500)
            for record in batch.get(tp, ()):
                offset: int = record.offset
                if offset > through:
                    return expired
                scanned += 1
                key = record.key.decode("utf-8", "replace") if record.key else None
                if key is not None and key in channels:
                    try:
                        events.append(to_event(key, partition, offset, record.value))
                    except EnvelopeError:
                        continue  # the live hub counts and logs these
                    if len(events) >= self._max_events:
                        return offset < through
                if offset >= through:
                    return expired
            position: int = await consumer.position(tp)
            if position > through:
                return expired
            if scanned >= self._max_scan:
                return True
