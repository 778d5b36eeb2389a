"""Group commit: records decided during a flush share the next one; a bad one fails alone."""

from __future__ import annotations

import asyncio
import types
from pathlib import Path

import faust
import pytest

from agents.app import faust_settings
from agents.runtime.changelogs import RepairingTable
from agents.runtime.commit import CommitGroup
from agents.runtime.declare import as_current
from agents.runtime.effects import Held, Send, held
from config import Settings
from tests.support.recording import close_unstarted_consumer_loop


class Producer:
    """Faust's producer interface: ``send`` queues a record and returns its delivery future.

    Records whose key is in ``refuse`` are refused by "the broker"; ``gate``, while clear,
    holds every delivery back, as a slow broker would.
    """

    def __init__(self, *, refuse: frozenset[bytes] = frozenset()) -> None:
        self.flushes: list[list[bytes]] = []
        self.refuse = refuse
        self.gate = asyncio.Event()
        self.gate.set()
        self._current: list[bytes] | None = None

    async def send(self, topic: str, key: bytes, value: bytes, partition: None, timestamp: None,
                   headers: list[tuple[str, bytes]]) -> asyncio.Future[None]:
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().create_task(self._deliver(key, delivery))
        return delivery

    async def _deliver(self, key: bytes, delivery: asyncio.Future[None]) -> None:
        await self.gate.wait()
        if key in self.refuse:
            delivery.set_exception(RuntimeError(f"refused {key!r}"))
        else:
            delivery.set_result(None)


def record(producer: Producer, *keys: str) -> Held:
    return Held(sends=[Send(producer, "t", k.encode(), b"{}", []) for k in keys])


class Counting(Producer):
    """Counts the records handed over before each await of their acks."""

    async def send(self, topic: str, key: bytes, value: bytes, partition: None, timestamp: None,
                   headers: list[tuple[str, bytes]]) -> asyncio.Future[None]:
        if self._current is None:
            self._current = []
            self.flushes.append(self._current)
            asyncio.get_running_loop().call_soon(self._end_flush)
        self._current.append(key)
        return await super().send(topic, key, value, partition, timestamp, headers)

    def _end_flush(self) -> None:
        self._current = None


async def test_records_decided_during_a_flush_are_committed_together_in_the_next() -> None:
    producer = Counting()
    group = CommitGroup()
    producer.gate.clear()  # the first flush waits for its acks...
    first = asyncio.create_task(group.commit(record(producer, "a")))
    await asyncio.sleep(0)
    # ...while three more records are decided.
    rest = [asyncio.create_task(group.commit(record(producer, k, k + "2"))) for k in "bcd"]
    await asyncio.sleep(0.01)
    producer.gate.set()
    await asyncio.gather(first, *rest)

    assert producer.flushes == [[b"a"], [b"b", b"b2", b"c", b"c2", b"d", b"d2"]]


async def test_a_refused_record_fails_alone_and_the_others_commit() -> None:
    producer = Producer(refuse=frozenset({b"bad"}))
    group = CommitGroup()
    producer.gate.clear()
    blocker = asyncio.create_task(group.commit(record(producer, "first")))
    await asyncio.sleep(0)
    good = asyncio.create_task(group.commit(record(producer, "good")))
    bad = asyncio.create_task(group.commit(record(producer, "bad")))
    other = asyncio.create_task(group.commit(record(producer, "other")))
    await asyncio.sleep(0)
    producer.gate.set()

    await asyncio.gather(blocker, good, other)
    with pytest.raises(RuntimeError, match="refused"):
        await bad


async def test_nothing_held_commits_at_once_and_close_fails_what_waits() -> None:
    producer = Producer()
    group = CommitGroup()
    await group.commit(Held())  # nothing to flush, no task

    producer.gate.clear()
    waiting = asyncio.create_task(group.commit(record(producer, "x")))
    await asyncio.sleep(0.01)
    await group.aclose()

    with pytest.raises(asyncio.CancelledError):
        await waiting


async def test_an_unreachable_broker_fails_every_waiting_record_at_once() -> None:
    from aiokafka.errors import KafkaConnectionError

    class Down(Producer):
        calls = 0

        async def send(self, topic: str, key: bytes, value: bytes, partition: None,
                       timestamp: None, headers: list[tuple[str, bytes]]) -> asyncio.Future[None]:
            Down.calls += 1
            if key != b"first":
                raise KafkaConnectionError("no broker")
            return await super().send(topic, key, value, partition, timestamp, headers)

    producer = Down()
    group = CommitGroup()
    producer.gate.clear()
    blocker = asyncio.create_task(group.commit(record(producer, "first")))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(group.commit(record(producer, k))) for k in "abc"]
    await asyncio.sleep(0)
    producer.gate.set()
    await blocker

    for task in waiting:
        with pytest.raises(KafkaConnectionError):
            await task
    assert Down.calls == 2  # "first", then "a" failed the flush: not one try per record


class Event:
    """What a table write reads of Faust's current event: the partition it belongs to."""

    def __init__(self) -> None:
        self.message = types.SimpleNamespace(partition=0, topic="t")


class ChangelogProducer:
    """Faust's producer as a table's changelog send meets it: a buffer, and send_soon."""

    def __init__(self, *, running: bool) -> None:
        self.buffer = types.SimpleNamespace(started=running, should_stop=False)
        self.queued: list[asyncio.Future[None]] = []

    def send_soon(self, fut: asyncio.Future[None]) -> None:
        self.queued.append(fut)


async def test_a_record_is_durable_only_once_its_table_changes_are_on_their_changelog(
    tmp_path: Path,
) -> None:
    # The table every agent's tables are, on an app that is never started.
    settings = Settings(data_dir=tmp_path, jwt_secret="x" * 48, topic_prefix="u.")
    app = faust.App(settings.app_id, **faust_settings(settings, store="memory://"))
    try:
        table = app.Table("t", partitions=1, key_type=str)
        assert isinstance(table, RepairingTable)
        producer = ChangelogProducer(running=True)
        app.producer = producer  # type: ignore[assignment]
        event = Event()
        with as_current(event), held() as effects:
            table["k"] = {"stock": 1}
        # A record whose only effect is a table change still has something to commit.
        assert effects
        assert effects.changelog == producer.queued
        (changelog,) = effects.changelog

        group = CommitGroup()
        committing = asyncio.create_task(group.commit(effects))
        await asyncio.sleep(0.01)
        assert not committing.done()  # not durable while its changelog record is unacked
        changelog.set_result(None)
        await committing

        # Outside a record (a timer, the changelog repair) a change holds nothing back.
        with as_current(event):
            table["k"] = {"stock": 2}
        # Nor with no producer running (Faust's test harness): no ack would ever come.
        app.producer = ChangelogProducer(running=False)  # type: ignore[assignment]
        with as_current(event), held() as effects:
            table["k"] = {"stock": 3}
        assert not effects
    finally:
        close_unstarted_consumer_loop(app)


def test_a_send_error_faust_wraps_is_judged_by_its_cause() -> None:
    from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
    from faust.exceptions import ProducerSendError

    from agents.runtime.resilience import is_outage

    def wrapped(cause: Exception) -> ProducerSendError:
        try:
            raise ProducerSendError("Error while sending") from cause
        except ProducerSendError as exc:
            return exc

    assert is_outage(wrapped(KafkaTimeoutError()))  # the broker away: wait for it
    assert not is_outage(wrapped(MessageSizeTooLargeError()))  # this record: dead-letter it
