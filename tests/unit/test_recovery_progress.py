"""Recovery progress per table from Faust's offsets and highwaters (``agents.runtime.recovery``)."""

from __future__ import annotations

from typing import Any

import faust
from faust.types import TP

from agents.runtime.recovery import RecoveryWatch, table_progress

ORDERS_0, ORDERS_1, STOCK_0 = TP("orders-changelog", 0), TP("orders-changelog", 1), TP("s", 0)
TABLES = {ORDERS_0: "orders", ORDERS_1: "orders", STOCK_0: "stock"}


def test_partitions_of_a_table_are_summed_from_where_recovery_began() -> None:
    # Offsets are the last applied, highwaters the last to apply (Faust's -1 convention).
    began = {ORDERS_0: -1, ORDERS_1: 99, STOCK_0: 9}
    offsets = {ORDERS_0: 49, ORDERS_1: 149, STOCK_0: 9}
    highwaters = {ORDERS_0: 99, ORDERS_1: 299, STOCK_0: 19}
    assert table_progress(TABLES, began, offsets, highwaters) == {
        "orders": {"restored": 50 + 50, "toRestore": 100 + 200},
        "stock": {"restored": 0, "toRestore": 10},
    }


def test_nothing_to_restore_is_not_listed_and_figures_stay_in_bounds() -> None:
    began = {ORDERS_0: 99, ORDERS_1: 5, STOCK_0: 5}
    # ORDERS_0 is level with its changelog; STOCK_0's changelog is empty; ORDERS_1's offset
    # was rebuilt past the highwater read earlier, and not yet read at all is None.
    offsets: dict[TP, int | None] = {ORDERS_0: 99, ORDERS_1: 40, STOCK_0: None}
    highwaters: dict[TP, int | None] = {ORDERS_0: 99, ORDERS_1: 25, STOCK_0: -1}
    assert table_progress(TABLES, began, offsets, highwaters) == {
        "orders": {"restored": 20, "toRestore": 20},
    }
    offsets[ORDERS_1] = None
    assert table_progress(TABLES, began, offsets, highwaters) == {
        "orders": {"restored": 0, "toRestore": 20},
    }


def test_the_watch_reads_fausts_recovery_state() -> None:
    # Faust's own Recovery object, so a Faust upgrade that renames its fields fails here.
    app: Any = faust.App("recovery-progress-unit", store="memory://")
    table: Any = app.Table("carts", default=int)
    recovery = app.tables.recovery
    tp = TP(table.changelog_topic.get_topic_name(), 0)
    recovery.add_active(table, tp)
    watch = RecoveryWatch()
    watch.begin(recovery)  # the memory store persists no offset: from the start
    recovery.active_highwaters[tp] = 999
    recovery.active_offsets[tp] = 249
    assert watch.progress(recovery) == {"carts": {"restored": 250, "toRestore": 1000}}
