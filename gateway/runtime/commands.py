"""Request/reply over Kafka: send a command, wait (bounded) for the agent's answer.

Every command the gateway sends goes through ``CommandBus.ask`` (wait for the
answer) or ``CommandBus.publish`` (fire and forget): both take the topic and the
record key from the payload's registration and mint the envelope here, so no
caller builds one by hand.

Every gateway instance reads the whole ``replies`` topic without a consumer
group and keeps only answers addressed to the commands it is waiting for, so
any number of gateway instances can wait for answers at once.

An answer is matched to its waiting request by the command's own id, which
``new_event`` mints here, and never by the correlation id: that one may be a
client's ``X-Request-ID``, and two requests sent with the same one would
otherwise get each other's answers (one user's data in another's response).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from config import Settings
from gateway import keys
from streams.envelope import Envelope, EnvelopeError, new_event, utcnow
from streams.errors import Unavailable
from streams.events.commands import CommandAnswered
from streams.follow import assign_whole_topic
from streams.kafka_compat import wake
from streams.registry import Command, Payload, command_spec, spec_for_model

log = logging.getLogger(__name__)


def command_deadline(settings: Settings) -> timedelta:
    """How long a command stays valid: the wait minus a margin for the answer's trip back."""
    margin = max(0.5, settings.command_timeout * 0.1)
    return timedelta(seconds=max(0.1, settings.command_timeout - margin))


class CommandBus:
    """Sends commands and resolves the futures of callers waiting for their answers."""

    def __init__(
        self,
        settings: Settings,
        producer: AIOKafkaProducer,
        instance_id: str,
        *,
        source: str | None = None,
    ) -> None:
        self._settings = settings
        self._producer = producer
        self.instance_id = instance_id
        self.source = source or f"gateway/{instance_id}"
        self._waiting: dict[str, asyncio.Future[CommandAnswered]] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.answered = 0
        self.timed_out = 0

    async def ask(self, payload: Command, *, correlation_id: str | None) -> dict[str, Any]:
        """Send ``payload`` and wait for the agent: its result, or the rejection's domain error.

        ``correlation_id`` (a client's ``X-Request-ID``) only ties events together in logs;
        the answer is matched by the id minted here, fresh for every command.
        """
        spec = command_spec(type(payload))
        command = new_event(
            payload, key=payload.record_key(), source=self.source, correlation_id=correlation_id
        )
        answer = await self._request(spec_for_model(type(payload)).topic, command)
        if answer.outcome == "rejected":
            raise spec.error(answer.code, answer.detail)
        return dict(answer.result)

    async def publish(self, payload: Payload, *, correlation_id: str | None) -> None:
        """Queue ``payload`` on its topic without waiting for the broker; failures are logged.

        Nothing waits on these (audit records, queued user commands, download facts,
        messages), so a broker outage costs the record, never the caller's response.
        """
        event = new_event(
            payload, key=payload.record_key(), source=self.source, correlation_id=correlation_id
        )
        try:
            delivery = await self._producer.send(
                self._settings.topic(spec_for_model(type(payload)).topic),
                key=event.key.encode(),
                value=event.encode(),
                headers=event.headers(),
            )
        except KafkaError as exc:
            log.error("%s %s not queued: %r", event.type, event.id, exc)
            return
        delivery.add_done_callback(lambda done: _log_failure(event, done))

    async def _request(self, topic: str, command: Envelope) -> CommandAnswered:
        """Publish ``command`` and wait for its answer; ``Unavailable`` if none comes in time."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[CommandAnswered] = loop.create_future()
        self._waiting[command.id] = future
        started = time.monotonic()
        if self._consumer is not None:
            wake(self._consumer)  # the answer comes soon: stop any idle pause on replies
        try:
            try:
                # Bounded by the same wait as the answer: with the broker down, aiokafka
                # holds a send for its own timeouts (metadata, then delivery, retried), and
                # a 30 s broker restart left requests unanswered past 15 s. A command sent
                # later than this is past its deadline, and the worker drops it.
                async with asyncio.timeout(self._settings.command_timeout):
                    await self._producer.send_and_wait(
                        self._settings.topic(topic),
                        key=command.key.encode(),
                        value=command.encode(),
                        headers=command.headers(),
                    )
            except (KafkaError, TimeoutError) as exc:
                log.warning("command %s not sent: %r", command.id, exc)
                raise Unavailable(
                    "the event broker is unavailable; nothing was applied, retry shortly",
                    retry_after=2,
                ) from None
            remaining = self._settings.command_timeout - (time.monotonic() - started)
            try:
                return await asyncio.wait_for(future, timeout=max(remaining, 0.01))
            except TimeoutError:
                self.timed_out += 1
                raise Unavailable(
                    "no worker answered in time; nothing was applied, retry shortly",
                    retry_after=max(1, round(self._settings.command_timeout)),
                    code="WORKER_UNAVAILABLE",
                ) from None
        finally:
            self._waiting.pop(command.id, None)

    async def start(self) -> None:
        """Start reading answers from the end of the replies topic."""
        topic = self._settings.topic("replies")
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap,
            client_id=f"{self._settings.app_id}-gateway-{self.instance_id}",
            enable_auto_commit=False,
            fetch_max_wait_ms=50,
        )
        await consumer.start()
        try:
            assigned = await assign_whole_topic(consumer, topic)
            await consumer.seek_to_end(*assigned)
            for tp in assigned:
                # Resolve the position now, so no answer sent after start-up can be skipped.
                await consumer.position(tp)
        except BaseException:
            await consumer.stop()
            raise
        self._consumer = consumer
        self._task = asyncio.create_task(self._read(consumer), name="command-replies")

    async def stop(self) -> None:
        """Stop reading; callers still waiting get ``Unavailable``."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(Unavailable("the gateway is shutting down"))

    async def _read(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    self._resolve(record.key, record.value)

    def _resolve(self, key: bytes | None, value: bytes | None) -> None:
        if key is None or value is None:
            return
        future = self._waiting.get(key.decode("utf-8", "replace"))
        if future is None or future.done():
            return  # another instance's command, or an answer we stopped waiting for
        try:
            answer: CommandAnswered = Envelope.decode(value).payload(CommandAnswered)
        except (EnvelopeError, ValueError) as exc:
            log.error("unreadable command answer: %r", exc)
            return
        if answer.command_id != key.decode("utf-8", "replace"):
            log.error("answer keyed %r names command %s; ignored", key, answer.command_id)
            return
        self.answered += 1
        future.set_result(answer)


def _log_failure(event: Envelope, delivery: asyncio.Future[Any]) -> None:
    if not delivery.cancelled() and delivery.exception() is not None:
        log.error("%s %s not delivered: %r", event.type, event.id, delivery.exception())


async def ask(request: web.Request, payload: Command) -> dict[str, Any]:
    """``CommandBus.ask`` on behalf of ``request``, correlated by its request id."""
    return await request.app[keys.COMMANDS].ask(payload, correlation_id=request[keys.REQUEST_ID])


async def publish(request: web.Request, payload: Payload) -> None:
    """``CommandBus.publish`` on behalf of ``request``, correlated by its request id."""
    await request.app[keys.COMMANDS].publish(payload, correlation_id=request.get(keys.REQUEST_ID))


@contextlib.asynccontextmanager
async def started(bus: CommandBus) -> AsyncIterator[CommandBus]:
    """Run ``bus`` for the duration of the block."""
    await bus.start()
    try:
        yield bus
    finally:
        await bus.stop()


def new_deadline(settings: Settings) -> datetime:
    """The deadline to stamp on a command sent now."""
    return utcnow() + command_deadline(settings)
