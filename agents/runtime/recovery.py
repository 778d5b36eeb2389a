"""How far a worker's table recovery has got, per table, from Faust's recovery state.

Faust restores each active changelog partition from the offset its local store holds up to
the changelog's highwater (``faust.tables.recovery.Recovery``: ``active_offsets``, the last
offset applied, and ``active_highwaters``, the last offset to apply; -1 means none). The
figures count records: ``restored`` = offsets applied since recovery began, ``toRestore`` =
highwater minus the offset it began at, summed over the table's active partitions.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any, TypeVar

P = TypeVar("P", bound=Hashable)


def table_progress(
    tables: Mapping[P, str],
    began: Mapping[P, int],
    offsets: Mapping[P, int | None],
    highwaters: Mapping[P, int | None],
) -> dict[str, dict[str, int]]:
    """``{table: {restored, toRestore}}`` over ``tables`` (partition -> table name).

    Only tables with something to restore are listed; a partition is never counted as more
    than restored, nor below zero (its offsets may be rebuilt while recovery starts).
    """
    figures: dict[str, dict[str, int]] = {}
    for partition, table in tables.items():
        highwater = highwaters.get(partition)
        start = began.get(partition, -1)
        if highwater is None or highwater <= start:
            continue
        offset = offsets.get(partition)
        to_restore = highwater - start
        restored = 0 if offset is None else min(to_restore, max(0, offset - start))
        entry = figures.setdefault(table, {"restored": 0, "toRestore": 0})
        entry["restored"] += restored
        entry["toRestore"] += to_restore
    return figures


class RecoveryWatch:
    """Remembers where each active partition's recovery began, and measures it against now.

    ``recovery`` is Faust's ``app.tables.recovery``, an internal whose shape is not a contract:
    callers catch what reading it raises.
    """

    def __init__(self) -> None:
        self._began: dict[Any, int] = {}

    def begin(self, recovery: Any) -> None:
        """A new assignment: its recovery starts from the offsets the local stores hold now."""
        offsets = dict(recovery.active_offsets)
        self._began = {
            tp: -1 if offsets.get(tp) is None else offsets[tp] for tp in recovery.active_tps
        }

    def progress(self, recovery: Any) -> dict[str, dict[str, int]]:
        """The per-table figures of ``recovery`` as it stands."""
        offsets: dict[Any, int | None] = dict(recovery.active_offsets)
        tables = {
            tp: recovery.tp_to_table[tp].name
            for tp in recovery.active_tps
            if tp in recovery.tp_to_table
        }
        for tp in tables:
            # Assigned without a begin() seen (a missed signal): measure from here on.
            if tp not in self._began:
                offset = offsets.get(tp)
                self._began[tp] = -1 if offset is None else offset
        return table_progress(tables, self._began, offsets, dict(recovery.active_highwaters))
