"""Changelogs that catch up with the local tables after a worker was killed.

Faust writes a table change to the local RocksDB store at once and to the table's
changelog topic later, from the producer's buffer. A worker killed in between (SIGKILL,
the OOM killer, a power cut) leaves a local store *ahead* of its changelog, and nothing
brings the changelog level again: a record that made such a change is either delivered
again and recognised as applied (every agent skips what it has already applied: that is
what makes it idempotent), or was even committed already (Faust's commit flushes the
producer's buffer only until no message has gone out for 0.1 s, so under load a commit
can overtake a table write; an agent's record no longer can: its group commit waits
for its changelog records, see ``RepairingTable``). The next worker to restore the table
from its changelog (local state lost, or the partition moved to another host) gets older
values: found by the analytics crash test, where an order that had completed came back
awaiting its charge, its deadline fired and the saga failed an order whose payment had
been captured.

So a worker whose previous run in the same data dir did not exit cleanly sends, once
recovery of a table partition has completed and before its agents process anything,
every key of that partition to the changelog as the local store holds it (the raw bytes
Faust keeps, which are the bytes it sends). The local store is then the newest state
there is (recovery has replayed onto it whatever the changelog holds beyond it), so the
changelog's last record of every key is the truth again. It costs one changelog record
per local key, once per unclean exit; a clean exit is marked in the data dir and costs
nothing.

The same repair levels a changelog that lost its tail on the broker: a broker that loses
records it had acknowledged (Kafka after an unclean leader election; the dev broker noida
when stopped under load, measured by the chaos tier) leaves a table's local store with a
changelog offset beyond the topic's end. Faust refuses to start then (its consistency
check, turned off in ``agents.app``); instead such a partition is found after recovery
(``behind``) and re-sent whole, however the previous run ended. That is right for the data
dir's own writes. Not told apart: with several workers, a partition another worker wrote to
after the loss (still ending before this store's offset) and then handed back is re-sent
from this store too, so that worker's newer changes lose to this store's older ones; a
broker that loses acknowledged records has lost changes either way.

Limits: a deletion lost the same way is not repaired (the key is absent locally, so there
is nothing to send; the restored table would hold the deleted key again); and only the
worker that owns the data dir repairs it, when it is assigned those partitions again.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import faust

from agents.runtime.effects import hold_changelog

log = logging.getLogger(__name__)
CLEAN_EXIT_FILE = "worker-clean-exit"
# Faust's datadir inside the data dir: the app factory configures it, the crash check reads it.
TABLES_DIR = "worker"
# Let the producer drain now and then: a large table must not sit in its buffer whole.
FLUSH_EVERY = 1000
# A repair that failed to send is tried again after this long, doubling up to the maximum.
RETRY_SECONDS = 1.0
RETRY_MAX_SECONDS = 30.0
_REPAIRS: weakref.WeakKeyDictionary[Any, Repair] = weakref.WeakKeyDictionary()


def previous_run_crashed(data_dir: Path) -> bool:
    """Whether the tables in ``data_dir`` were left by a run without a clean exit.

    Clears the clean-exit mark: until this run marks its own exit, it counts as unclean.
    """
    mark = data_dir / CLEAN_EXIT_FILE
    clean = mark.exists()
    mark.unlink(missing_ok=True)
    tables = data_dir / TABLES_DIR
    return not clean and tables.is_dir() and any(tables.iterdir())


def mark_clean_exit(data_dir: Path) -> None:
    """Record that this run stopped in order: its changelogs hold every local change."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / CLEAN_EXIT_FILE).touch()


class Repair:
    """Which table partitions of one app have been re-sent (see the module docstring)."""

    def __init__(self) -> None:
        self.done: set[tuple[str, int]] = set()
        self.sent = 0

    @property
    def ran(self) -> bool:
        """Whether any partition was repaired: until then an exit must not count as clean."""
        return bool(self.done)

    async def resend(self, table: Any, partitions: Iterable[int]) -> None:
        """Send every local key of ``table``'s ``partitions`` not yet re-sent to its changelog."""
        store = table.data
        # Faust's RocksDB store (private API, pinned with faust-streaming): one database per
        # partition, raw keys and values. Other stores keep nothing across a crash.
        if not hasattr(store, "_db_for_partition"):
            return
        for partition in sorted(partitions):
            if (table.name, partition) in self.done:
                continue
            count = 0
            pending: list[Any] = []
            for key, value in store._visible_items(store._db_for_partition(partition)):
                pending.append(table.send_changelog(
                    partition, key, value, key_serializer="raw", value_serializer="raw"))
                count += 1
                if len(pending) == FLUSH_EVERY:
                    await _acked(table.app, pending)
            # Acked before the partition's agents start, not merely sent: a redelivered
            # record recognised as applied makes no change of its own, so its offset is
            # committed at once; a kill soon after, with these records still in the
            # producer's buffer, left a restore from the changelogs without the key (an
            # order's saga state lost: the chaos test under heavy load).
            await _acked(table.app, pending)
            self.done.add((table.name, partition))
            self.sent += count
            log.info("changelog of %s[%d] repaired: %d keys sent again",
                     table.name, partition, count)


async def _acked(app: Any, pending: list[Any]) -> None:
    """Send what the producer holds and wait until the broker has every one of ``pending``.

    Raises the first failure, once every record has been answered one way or the other.
    """
    await app.producer.flush()
    if pending:
        results = await asyncio.gather(*pending, return_exceptions=True)
        pending.clear()
        for result in results:
            if isinstance(result, BaseException):
                raise result


async def resend_until_taken(
    repair: Repair, table: Any, partitions: Iterable[int],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """``repair.resend`` until the broker has taken every record, however long that takes.

    Faust runs a table's recovery hook and then starts its agents whatever the hook did (it
    never looks at the hook's result), so a repair must not return, or raise, before it is
    done: a broker restarting during recovery (the chaos tier restarts it under load) would
    otherwise start the agents on an unrepaired partition, the very loss a repair prevents.
    So a failure is waited out like any outage; a partition is re-sent whole, which is
    harmless (the changelog keeps the last record of each key).
    """
    wanted = sorted(partitions)
    for attempt in itertools.count():
        try:
            await repair.resend(table, wanted)
            return
        except Exception as exc:  # any failure to send is waited out (see above)
            delay = min(RETRY_MAX_SECONDS, RETRY_SECONDS * 2**attempt)
            log.error("changelog repair of %s failed (%r); trying again in %gs",
                      table.name, exc, delay)
            await sleep(delay)


def arm(app: faust.App) -> Repair:
    """Make ``app``'s tables repair their changelogs once recovered."""
    repair = _REPAIRS[app] = Repair()
    return repair


def repair_of(app: faust.App) -> Repair | None:
    """The repair ``app`` was armed with, if any."""
    return _REPAIRS.get(app)


def drained(app: faust.App) -> bool:
    """Whether the producer's buffer is empty (no table change still waits to be sent)."""
    try:
        return int(app.producer.buffer.size) == 0
    except (AttributeError, RuntimeError):  # no producer was ever started: unknown
        return False


class RepairingTable(faust.Table[Any, Any]):
    """Faust's table, which re-sends its local partitions once recovered, if armed.

    Each change's changelog record is also committed with the effects of the record that
    made it (``agents.runtime.effects.commit``), so no offset is committed before the
    changes its record made are on their changelog.
    """

    def send_changelog(
        self,
        partition: int | None,
        key: Any,
        value: Any,
        key_serializer: Any = None,
        value_serializer: Any = None,
    ) -> Any:
        sent = super().send_changelog(partition, key, value, key_serializer, value_serializer)
        # Only a running buffer sends it: under Faust's test harness (no producer started)
        # the record would wait for an ack that never comes.
        buffer = self.app.producer.buffer
        if buffer.started and not buffer.should_stop:
            hold_changelog(sent)
        return sent

    async def on_recovery_completed(self, active_tps: Any, standby_tps: Any) -> None:
        await super().on_recovery_completed(active_tps, standby_tps)
        repair = _REPAIRS.get(self.app)
        if repair is not None:
            await resend_until_taken(repair, self, (tp.partition for tp in active_tps))
            return
        # Faust's recovery service (not on the typed TableManager interface) keeps, per
        # changelog partition, the local store's offset and the topic's end it found.
        tables: Any = self.app.tables
        recovery = tables.recovery
        lost = behind(self.changelog_topic.get_topic_name(), active_tps,
                      recovery.active_offsets, recovery.active_highwaters)
        if lost:
            log.warning("changelog of %s lost records the broker had acknowledged (partitions "
                        "%s end before the local store's offset): sending them again whole",
                        self.name, lost)
            # A repair of its own: arming the app would re-send every partition of every
            # table at each later rebalance.
            await resend_until_taken(Repair(), self, lost)


def behind(
    changelog: str, active: Iterable[Any], offsets: Mapping[Any, int | None],
    highwaters: Mapping[Any, int | None],
) -> list[int]:
    """The partitions of ``changelog`` whose local offset is past the topic's end."""
    return sorted(
        tp.partition for tp in active
        if tp.topic == changelog
        and (offset := offsets.get(tp)) is not None
        and (end := highwaters.get(tp)) is not None
        and offset > end
    )
