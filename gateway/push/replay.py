"""Reading channels' past events back from the push topic, bounded and shared.

A replay reads one partition from ``after + 1`` through ``through`` and keeps the
records whose key is one of the requested channels. Requests for one partition are
served together: while a pass over a partition runs, new requests for it wait, and
the next pass reads the union of their ranges once, handing each record to every
request whose channels and range it falls in. So when thousands of clients resume
at once (a gateway restarted, a network blip), each partition is read a few times,
not once per client. Passes use short-lived consumers (manual assignment, no group,
no commits), at most ``MAX_CONCURRENT_PASSES`` at a time.

A request stops after ``MAX_REPLAY_EVENTS`` matching events, half the client's unread
bound (``push_queue_bytes``) in bytes, or ``MAX_REPLAY_SCAN`` records of its range; a
pass stops after ``REPLAY_TIMEOUT`` seconds. The result then
says ``truncated`` and the client is told (``REPLAY_TRUNCATED``) to re-sync from the
REST API. What was replayed is always a gap-free prefix, so the last id received is
a valid resume point.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from config import Settings
from gateway.push.events import PushEvent, to_event
from streams.envelope import EnvelopeError
from streams.errors import Unavailable

log = logging.getLogger(__name__)

MAX_REPLAY_EVENTS = 1000
MAX_CONCURRENT_PASSES = 8
STOP_TIMEOUT = 5.0


class ReplayFailed(Exception):
    """A pass over a partition failed for a reason other than a timeout or the broker."""
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


@dataclasses.dataclass(slots=True, eq=False)
class _Request:
    """One caller's range and channels, and what the pass found for it."""

    after: int
    through: int
    channels: frozenset[str]
    future: asyncio.Future[ReplayResult]
    events: list[PushEvent] = dataclasses.field(default_factory=list)
    start: int = 0
    size: int = 0
    truncated: bool = False
    done: bool = False

    def finish(self) -> None:
        self.done = True
        if not self.future.done():  # a caller that went away cancelled it
            self.future.set_result(ReplayResult(tuple(self.events), self.truncated))

    def fail(self, exc: Exception) -> None:
        self.done = True
        if not self.future.done():
            self.future.set_exception(exc)


class KafkaReplayer:
    """A ``Replayer`` that serves concurrent requests of a partition with one read."""

    def __init__(
        self,
        settings: Settings,
        *,
        max_events: int = MAX_REPLAY_EVENTS,
        max_scan: int = MAX_REPLAY_SCAN,
        timeout: float = REPLAY_TIMEOUT,
    ) -> None:
        self._settings = settings
        # A replay is written to the client at once: keep it well inside what the client
        # may leave unread, or a resume over a slow link would be evicted every time.
        self._max_bytes = settings.push_queue_bytes // 2
        self._topic = settings.topic("push")
        self._max_events = max_events
        self._max_scan = max_scan
        self._timeout = timeout
        self._waiting: dict[int, list[_Request]] = {}
        self._serving: dict[int, asyncio.Task[None]] = {}
        self._passes = asyncio.Semaphore(MAX_CONCURRENT_PASSES)
        # Reads of the topic so far, and requests they served (for /metrics and tests).
        self.passes = 0
        self.requests = 0

    async def __call__(
        self, partition: int, after: int, through: int, channels: frozenset[str]
    ) -> ReplayResult:
        """Replay ``(after, through]`` of ``partition`` for ``channels``."""
        request = _Request(after, through, channels, asyncio.get_running_loop().create_future())
        self.requests += 1
        self._waiting.setdefault(partition, []).append(request)
        if partition not in self._serving:
            self._serving[partition] = asyncio.create_task(
                self._serve(partition), name=f"push-replay-{partition}"
            )
        return await request.future

    async def _serve(self, partition: int) -> None:
        try:
            # Whoever asked while a pass ran (or waited for a slot) is served by the next
            # one, all together.
            while partition in self._waiting:
                async with self._passes:
                    requests = self._waiting.pop(partition)
                    await self._pass(partition, requests)
        finally:
            del self._serving[partition]

    async def aclose(self) -> None:
        """Stop every pass; whoever still waits gets ``Unavailable``."""
        tasks = list(self._serving.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        for requests in self._waiting.values():
            for request in requests:
                request.fail(Unavailable("push replay stopped: the gateway is shutting down"))
        self._waiting.clear()

    async def _pass(self, partition: int, requests: list[_Request]) -> None:
        self.passes += 1
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
                await self._scan(consumer, partition, requests)
        except (TimeoutError, KafkaError) as exc:
            log.warning(
                "push replay stopped early", extra={"partition": partition, "error": repr(exc)}
            )
            for request in requests:
                request.truncated = request.truncated or not request.done
        except Exception:
            # Logged once here, not once per waiting client.
            log.exception("push replay failed", extra={"partition": partition})
            for request in requests:
                request.fail(ReplayFailed(f"reading partition {partition} failed"))
        finally:
            # Every caller is answered, whatever happened (a cancelled pass included).
            for request in requests:
                if not request.done:
                    request.truncated = True
                request.finish()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(STOP_TIMEOUT):
                    await consumer.stop()

    async def _scan(self, consumer: Any, partition: int, requests: list[_Request]) -> None:
        tp = TopicPartition(self._topic, partition)
        consumer.assign([tp])
        first: int = (await consumer.beginning_offsets([tp]))[tp]
        by_channel: dict[str, list[_Request]] = {}
        pending: list[_Request] = []
        for request in requests:
            # Records between the resume point and the start of retention are gone: a gap.
            request.truncated = request.after >= 0 and request.after + 1 < first
            request.start = max(request.after + 1, first)
            if request.start > request.through:
                request.finish()
                continue
            pending.append(request)
            for channel in request.channels:
                by_channel.setdefault(channel, []).append(request)
        if not pending:
            return
        consumer.seek(tp, min(r.start for r in pending))
        end = max(r.through for r in pending)
        while pending:
            batch = await consumer.getmany(tp, timeout_ms=500, max_records=500)
            last = -1
            for record in batch.get(tp, ()):
                last = record.offset
                if last > end:
                    break
                key = record.key.decode("utf-8", "replace") if record.key else None
                if key is not None and (wanting := by_channel.get(key)):
                    self._hand_out(wanting, partition, last, key, record.value)
            if last < 0:
                last = await consumer.position(tp) - 1
            pending = self._still_pending(pending, last)
            # Skip what nobody still waiting asked for (an old resume point that reached
            # its scan bound must not drag the pass through the gap).
            if pending and (start := min(r.start for r in pending)) > last + 1:
                consumer.seek(tp, start)

    def _hand_out(self, wanting: list[_Request], partition: int, offset: int, channel: str,
                  value: bytes) -> None:
        event: PushEvent | None = None
        for request in wanting:
            if request.done or not request.after < offset <= request.through:
                continue
            if event is None:
                try:
                    event = to_event(channel, partition, offset, value)
                except EnvelopeError:
                    return  # the live hub counts and logs these
            request.events.append(event)
            request.size += len(value)
            if len(request.events) >= self._max_events or request.size >= self._max_bytes:
                request.truncated = request.truncated or offset < request.through
                request.finish()

    def _still_pending(self, pending: list[_Request], last: int) -> list[_Request]:
        """Finish the requests the pass has read past (or scanned enough of)."""
        still: list[_Request] = []
        for request in pending:
            if request.done:
                continue
            if last >= request.through:
                request.finish()
            elif last - request.start + 1 >= self._max_scan:
                request.truncated = True
                request.finish()
            else:
                still.append(request)
        return still
