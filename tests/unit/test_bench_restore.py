"""The restore benchmark's records and arithmetic (bench.restore_records)."""

from __future__ import annotations

import re
from collections import Counter

import orjson

from bench.restore_records import (
    Fill,
    Restore,
    Sample,
    between,
    chunks,
    encode_key,
    encode_value,
    summary_line,
    table_records,
    total_restored,
)

SUMMARY = re.compile(
    r"^restore: \d+ records; worker \d+ rec/s cpu \d+\.\d ms/1k rss \d+ MB; "
    r"rocksdb \d+ rec/s cpu \d+\.\d ms/1k; consumer \d+ rec/s cpu \d+\.\d ms/1k; "
    r"ratio worker/rocksdb \d+\.\d{3} worker/consumer \d+\.\d{2}; load \d+\.\d{2}$"
)


def test_records_are_spread_over_every_table_and_add_up() -> None:
    fill = Fill(tables=("a", "b", "c"), partitions=4, records=1001, updates=4)
    counts = [sum(1 for _ in table_records(fill, i)) for i in range(3)]
    assert counts == [334, 334, 333]


def test_each_key_is_written_updates_times_always_to_one_partition() -> None:
    fill = Fill(tables=("sagas",), partitions=4, records=400, updates=4)
    partitions: dict[bytes, set[int]] = {}
    writes: Counter[bytes] = Counter()
    for partition, key, _ in table_records(fill, 0):
        partitions.setdefault(key, set()).add(partition)
        writes[key] += 1
    assert len(writes) == 100
    assert set(writes.values()) == {4}
    assert all(len(p) == 1 for p in partitions.values())
    assert {p for ps in partitions.values() for p in ps} == {0, 1, 2, 3}


def test_keys_and_values_are_json_as_faust_serializes_a_str_keyed_table() -> None:
    key = encode_key("order-sagas", 7)
    assert orjson.loads(key) == "order-sagas-00000007"
    value = encode_value(key, 2, 300)
    assert len(value) == 300
    decoded = orjson.loads(value)
    assert decoded["id"] == "order-sagas-00000007"
    assert decoded["version"] == 2
    # A size smaller than the fields: no padding, never truncated.
    assert orjson.loads(encode_value(key, 0, 10))["pad"] == ""


def test_chunks_keep_every_record_in_order() -> None:
    fill = Fill(tables=("t",), partitions=2, records=25)
    sizes = [len(c) for c in chunks(table_records(fill, 0), 10)]
    assert sizes == [10, 10, 5]
    flat = [r for c in chunks(table_records(fill, 0), 10) for r in c]
    assert flat == list(table_records(fill, 0))


def test_a_restore_between_two_samples_gives_rate_and_cpu_per_thousand() -> None:
    restore = between(Sample(at=10.0, restored=20_000, cpu_seconds=3.0),
                      Sample(at=14.0, restored=420_000, cpu_seconds=7.0))
    assert restore == Restore(records=400_000, seconds=4.0, cpu_seconds=4.0)
    assert restore.rate == 100_000
    assert restore.cpu_ms_per_1k == 10.0
    assert Restore(records=0, seconds=0.0, cpu_seconds=0.0).rate == 0.0


def test_the_report_is_summed_over_its_tables() -> None:
    report = {"order-sagas": {"restored": 10, "toRestore": 40},
              "inventory-stock": {"restored": 5, "toRestore": 60}}
    assert total_restored(report) == (15, 100)


def test_the_summary_line_has_its_fixed_form() -> None:
    worker = Restore(records=380_000, seconds=26.0, cpu_seconds=26.6)
    rocksdb = Restore(records=400_000, seconds=0.36, cpu_seconds=0.36)
    consumer = Restore(records=400_000, seconds=1.3, cpu_seconds=1.05)
    line = summary_line(400_000, worker, rocksdb, consumer, 333.4, 3.391)
    assert SUMMARY.match(line), line
    assert line == (
        "restore: 400000 records; worker 14615 rec/s cpu 70.0 ms/1k rss 333 MB; "
        "rocksdb 1111111 rec/s cpu 0.9 ms/1k; consumer 307692 rec/s cpu 2.6 ms/1k; "
        "ratio worker/rocksdb 0.013 worker/consumer 0.05; load 3.39"
    )
