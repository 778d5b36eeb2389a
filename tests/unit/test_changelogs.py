"""Which runs repair their changelogs, and what a repair sends (``agents.runtime.changelogs``)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from agents.runtime.changelogs import (
    CLEAN_EXIT_FILE,
    TABLES_DIR,
    Repair,
    mark_clean_exit,
    previous_run_crashed,
)


def test_only_tables_left_without_a_clean_exit_need_repair(tmp_path: Path) -> None:
    assert not previous_run_crashed(tmp_path)  # a fresh data dir: nothing to repair
    (tmp_path / TABLES_DIR / "tables").mkdir(parents=True)
    assert previous_run_crashed(tmp_path)  # tables, no mark: killed
    mark_clean_exit(tmp_path)
    assert previous_run_crashed(tmp_path) is False
    # The mark is cleared for the new run: if it is killed, the next one repairs.
    assert not (tmp_path / CLEAN_EXIT_FILE).exists()
    assert previous_run_crashed(tmp_path)


class Store:
    """The two calls of Faust's RocksDB store a repair makes: one database per partition."""

    def __init__(self, partitions: dict[int, dict[bytes, bytes]]) -> None:
        self.partitions = partitions

    def _db_for_partition(self, partition: int) -> dict[bytes, bytes]:
        return self.partitions.setdefault(partition, {})

    def _visible_items(self, db: dict[bytes, bytes]) -> list[tuple[bytes, bytes]]:
        return list(db.items())


class Producer:
    """Faust's producer as a repair sees it: a record is acked once a flush has sent it."""

    def __init__(self) -> None:
        self.buffered: list[asyncio.Future[None]] = []

    async def flush(self) -> None:
        await asyncio.sleep(0)  # the broker's round trip
        for sent in self.buffered:
            sent.set_result(None)
        self.buffered.clear()


class App:
    def __init__(self) -> None:
        self.producer = Producer()


class Table:
    def __init__(self, name: str, store: Store) -> None:
        self.name, self.data, self.app = name, store, App()
        self.sent: list[tuple[int, bytes, bytes, dict[str, Any]]] = []
        self.futures: list[asyncio.Future[None]] = []

    def send_changelog(
        self, partition: int, key: bytes, value: bytes, **options: Any,
    ) -> asyncio.Future[None]:
        self.sent.append((partition, key, value, options))
        sent = asyncio.get_running_loop().create_future()
        self.app.producer.buffered.append(sent)
        self.futures.append(sent)
        return sent


async def test_each_local_partition_is_sent_again_once_as_stored() -> None:
    table = Table("t", Store({0: {b'"a"': b"1", b'"b"': b"2"}, 1: {b'"c"': b"3"}}))
    repair = Repair()
    assert not repair.ran

    await repair.resend(table, [1, 0])
    raw = {"key_serializer": "raw", "value_serializer": "raw"}
    assert table.sent == [(0, b'"a"', b"1", raw), (0, b'"b"', b"2", raw), (1, b'"c"', b"3", raw)]
    assert repair.ran
    assert repair.sent == 3

    # A later rebalance hands partition 0 back and adds 2: only 2 is new to this run.
    table.data.partitions[2] = {b'"d"': b"4"}
    table.sent.clear()
    await repair.resend(table, [0, 2])
    assert table.sent == [(2, b'"d"', b"4", raw)]
    # Another table's partition 0 is its own.
    other = Table("u", Store({0: {b'"e"': b"5"}}))
    await repair.resend(other, [0])
    assert [s[1] for s in other.sent] == [b'"e"']


def test_a_changelog_that_ends_before_its_local_offset_is_behind() -> None:
    from faust.types import TP

    from agents.runtime.changelogs import behind

    mine, other = "app-t-changelog", "app-u-changelog"
    active = [TP(mine, 0), TP(mine, 1), TP(mine, 2), TP(mine, 3), TP(other, 0)]
    offsets = {TP(mine, 0): 10, TP(mine, 1): 7, TP(mine, 2): None, TP(mine, 3): 4,
               TP(other, 0): 99}
    ends = {TP(mine, 0): 10, TP(mine, 1): 3, TP(mine, 2): 5, TP(mine, 3): None,
            TP(other, 0): 1}
    # Partition 1 lost its tail; 0 is level, 2 has nothing local, 3's end is unknown.
    assert behind(mine, active, offsets, ends) == [1]


async def test_a_repair_returns_only_once_the_broker_has_every_record_it_sent() -> None:
    # Its agents start when it returns: a redelivered record recognised as applied is
    # committed at once, so a record still in the producer's buffer could be lost with a
    # kill while the offset that needed it is committed.
    keys = {f'"{n}"'.encode(): b"1" for n in range(2500)}  # two full batches and a tail
    table = Table("t", Store({0: keys, 1: {b'"x"': b"2"}}))
    await Repair().resend(table, [0, 1])
    assert len(table.futures) == 2501
    assert all(sent.done() for sent in table.futures)


class FailingOnce(Producer):
    """A broker that refuses the first flush's first record (restarting mid-recovery)."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    async def flush(self) -> None:
        if not self.failed and self.buffered:
            self.failed = True
            self.buffered.pop(0).set_exception(ConnectionError("broker restarting"))
        await super().flush()


async def test_a_repair_the_broker_refused_is_sent_again_until_taken() -> None:
    from agents.runtime.changelogs import resend_until_taken

    table = Table("t", Store({0: {b'"a"': b"1", b'"b"': b"2"}}))
    table.app.producer = FailingOnce()
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    repair = Repair()
    await resend_until_taken(repair, table, [0], sleep=sleep)
    # The first attempt raised (after every record was answered), the second took both.
    assert waits == [1.0]
    assert [key for _, key, _, _ in table.sent] == [b'"a"', b'"b"', b'"a"', b'"b"']
    assert all(sent.done() for sent in table.futures)
    assert repair.done == {("t", 0)}
