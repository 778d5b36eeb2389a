"""Changelogs that catch up with the local tables after a worker was killed.

Faust writes a table change to the local RocksDB store at once and to the table's
changelog topic a few milliseconds later, from the producer's buffer. A worker killed in
between (SIGKILL, the OOM killer, a power cut) leaves a local store *ahead* of its
changelog. The records that made those changes were not committed (Faust flushes the
producer before it commits offsets), so they are delivered again to the next run; but
every agent recognises a record it has already applied and skips it (that is what makes
it idempotent), so nothing writes those keys again and their changelog stays behind for
good. The next worker to restore the table from its changelog (local state lost, or the
partition moved to another host) gets the older value: found by the analytics crash test,
where an order that had completed came back awaiting its charge, its deadline fired and
the saga failed an order whose payment had been captured.

So a worker whose previous run in the same data dir did not exit cleanly repairs the
changelogs. While it processes records that were already on a partition when it first
saw that partition (the only ones the dead run can have applied), every key an agent
reads is sent to the changelog once, as the local store holds it (a tombstone when it is
absent: a lost deletion is repaired too). Agents read every key they write before they
decide (to find the decision already taken), so each key the dead run changed is
covered. The cost is one changelog record per distinct key read in that range, only after
an unclean exit; a clean exit is marked in the data dir and costs nothing.
"""

from __future__ import annotations

import logging
import weakref
from pathlib import Path
from typing import Any

import faust
from faust.streams import current_event

log = logging.getLogger(__name__)
CLEAN_EXIT_FILE = "worker-clean-exit"
TABLES_DIR = "worker"  # Faust's datadir inside the data dir (``agents.app.faust_settings``)
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
    """Which reads of one app are sent to their changelog (see the module docstring)."""

    def __init__(self) -> None:
        # Per source partition: its end offset when this run first saw it. Records from
        # there on did not exist when the previous run died.
        self._until: dict[Any, int] = {}
        self._sent: set[tuple[str, Any]] = set()
        self.sent = 0

    def due(self, table: str, key: Any, message: Any, consumer: Any) -> bool:
        """Whether reading ``key`` of ``table`` for ``message`` must repair its changelog."""
        tp = message.tp
        until = self._until.get(tp)
        if until is None:
            end = consumer.highwater(tp)
            # Not known yet (no fetch answer recorded): repair, the safe side.
            if isinstance(end, int) and end >= 0:
                until = self._until[tp] = end
        if until is not None and message.offset >= until:
            return False
        if (table, key) in self._sent:
            return False
        self._sent.add((table, key))
        self.sent += 1
        return True


def arm(app: faust.App) -> Repair:
    """Make ``app``'s tables repair their changelogs while they catch up."""
    repair = _REPAIRS[app] = Repair()
    return repair


class RepairingTable(faust.Table[Any, Any]):
    """Faust's table, which re-sends what it reads while its app repairs."""

    def on_key_get(self, key: Any) -> None:
        super().on_key_get(key)
        repair = _REPAIRS.get(self.app)
        if repair is None:
            return
        event = current_event()
        if event is None or not repair.due(self.name, key, event.message, self.app.consumer):
            return
        partition = self.partition_for_key(key)
        try:
            value = self.data[key]
        except KeyError:
            self.send_changelog(partition, key, None, value_serializer="raw")
        else:
            self.send_changelog(partition, key, value)
