"""The restore benchmark's records and arithmetic: what goes into the changelogs, what it cost.

Records are written as Faust writes a table's changelog (``agents.runtime.declare``: str keys,
JSON values, both through Faust's ``json`` serializer): key ``b'"<id>"'``, value a JSON
object. Each key is written ``updates`` times, keys in rotation, as an order's saga entry is
rewritten at each step; a key always goes to the same partition, as Faust's co-partitioned
writes do. Everything here is deterministic and pure, so the baselines load the very
records the worker restores.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator, Mapping, Sequence

import orjson

STATUSES = ("placed", "reserved", "charged", "completed", "refunded")
# One record as the recovery sees it: (partition, key bytes, value bytes).
Record = tuple[int, bytes, bytes]


@dataclasses.dataclass(frozen=True, slots=True)
class Fill:
    """``records`` changelog records spread evenly over ``tables``, ``partitions`` each."""

    tables: Sequence[str]
    partitions: int
    records: int
    updates: int = 4
    value_bytes: int = 300

    def per_table(self, index: int) -> int:
        """How many records table ``index`` gets (the remainder goes to the first tables)."""
        share, extra = divmod(self.records, len(self.tables))
        return share + (1 if index < extra else 0)


def encode_key(table: str, key: int) -> bytes:
    """The changelog key of entry ``key`` of ``table``: a JSON string, as Faust sends it."""
    return orjson.dumps(f"{table}-{key:08d}")


def encode_value(key: bytes, version: int, size: int) -> bytes:
    """A saga-like JSON entry of about ``size`` bytes (never less than its fields need)."""
    body = {
        "id": key[1:-1].decode(), "status": STATUSES[version % len(STATUSES)],
        "version": version, "buyerId": "bench-buyer", "total": "5.00", "currency": "USD",
        "items": [{"productId": "bench-product", "quantity": 1, "price": "5.00"}],
        "pad": "",
    }
    body["pad"] = "x" * max(0, size - len(orjson.dumps(body)))
    return orjson.dumps(body)


def table_records(fill: Fill, index: int) -> Iterator[Record]:
    """Table ``index``'s records in the order they are produced."""
    total = fill.per_table(index)
    keys = max(1, -(-total // fill.updates))
    table = fill.tables[index]
    for seq in range(total):
        version, key = divmod(seq, keys)
        encoded = encode_key(table, key)
        yield key % fill.partitions, encoded, encode_value(encoded, version, fill.value_bytes)


def chunks(records: Iterator[Record], size: int) -> Iterator[list[Record]]:
    """``records`` in lists of ``size`` (the last may be shorter)."""
    while chunk := list(itertools.islice(records, size)):
        yield chunk


@dataclasses.dataclass(frozen=True, slots=True)
class Sample:
    """One sight of the worker's recovery: when, how far (records), and its CPU seconds."""

    at: float
    restored: int
    cpu_seconds: float


@dataclasses.dataclass(frozen=True, slots=True)
class Restore:
    """Records restored between two samples, per second and per CPU."""

    records: int
    seconds: float
    cpu_seconds: float

    @property
    def rate(self) -> float:
        """Records restored per second."""
        return self.records / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_ms_per_1k(self) -> float:
        """CPU milliseconds per 1,000 records restored."""
        return self.cpu_seconds * 1e6 / self.records if self.records else 0.0


def between(first: Sample, last: Sample) -> Restore:
    """What the worker did from ``first`` to ``last``."""
    return Restore(records=last.restored - first.restored, seconds=last.at - first.at,
                   cpu_seconds=last.cpu_seconds - first.cpu_seconds)


def total_restored(report: Mapping[str, Mapping[str, int]]) -> tuple[int, int]:
    """``(restored, toRestore)`` summed over a worker's per-table recovery report."""
    return (sum(t["restored"] for t in report.values()),
            sum(t["toRestore"] for t in report.values()))


def summary_line(records: int, worker: Restore, rocksdb: Restore, consumer: Restore,
                 peak_rss_mb: float, load: float) -> str:
    """The benchmark's last line (its form is fixed: scripts and docs parse it)."""
    def ratio(other: Restore) -> float:
        return worker.rate / other.rate if other.rate else 0.0

    return (
        f"restore: {records} records; worker {worker.rate:.0f} rec/s "
        f"cpu {worker.cpu_ms_per_1k:.1f} ms/1k rss {peak_rss_mb:.0f} MB; "
        f"rocksdb {rocksdb.rate:.0f} rec/s cpu {rocksdb.cpu_ms_per_1k:.1f} ms/1k; "
        f"consumer {consumer.rate:.0f} rec/s cpu {consumer.cpu_ms_per_1k:.1f} ms/1k; "
        f"ratio worker/rocksdb {ratio(rocksdb):.3f} worker/consumer {ratio(consumer):.2f}; "
        f"load {load:.2f}"
    )
