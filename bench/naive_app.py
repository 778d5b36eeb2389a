"""The naive Faust agent: one RocksDB table increment per event (run by ``faust -A``).

With ``BENCH_TABLE=0`` it is the *Faust floor* instead: the same agent counting in memory,
no table, so what remains is Faust's own cost of reading a record (and JSON-decoding it).

Configured only through ``BENCH_*`` environment variables set by ``bench.naive``;
building the App opens nothing, the worker connects when Faust starts it.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import faust
import orjson

from bench.common import percentiles_ms
from bench.workload import END, PING


def _env(name: str) -> str:
    try:
        return os.environ[name]
    except KeyError:
        raise RuntimeError(
            f"{name} is not set: this app is started by `python -m bench.baseline`, not by hand"
        ) from None


PARTITIONS = int(_env("BENCH_PARTITIONS"))
SOURCE = _env("BENCH_SOURCE")
MARKS = Path(_env("BENCH_MARKS"))
WRITE_TABLE = os.environ.get("BENCH_TABLE", "1") == "1"

app = faust.App(
    _env("BENCH_APP_ID"),
    broker=_env("BENCH_KAFKA_URL"),
    store="rocksdb://",
    datadir=_env("BENCH_DATADIR"),
    broker_session_timeout=10,
    broker_heartbeat_interval=1,
    consumer_auto_offset_reset="earliest",
    web_enabled=False,
    topic_partitions=PARTITIONS,
)
source = app.topic(SOURCE, partitions=PARTITIONS, value_serializer="json")
# key_type=bytes makes Faust store keys "raw": no JSON round trip the agent would not need.
counts = app.Table("counts", default=int, partitions=PARTITIONS, key_type=bytes)

# Measurement bookkeeping, not agent state: one worker, one agent instance (concurrency=1).
_seen: Counter[int] = Counter()
_ended: set[int] = set()
_latencies_ns: list[int] = []
_in_memory: Counter[bytes] = Counter()


@app.agent(source)
async def count(stream: Any) -> None:
    """table[key] += 1 per event; answer pings; report when each partition's end is reached."""
    async for event in stream.events():
        value = event.value
        partition = event.message.partition
        kind = value.get("kind")
        if kind is None:
            if WRITE_TABLE:
                counts[event.key] += 1
            else:
                _in_memory[event.key] += 1
            _latencies_ns.append(time.time_ns() - value["ts"])
            _seen[partition] += 1
        elif kind == PING:
            _mark({"kind": "pong", "partition": partition})
        elif kind == END:
            # Partition order guarantees every event sent before this marker is counted now.
            _mark({"kind": END, "partition": partition, "seen": _seen[partition],
                   "ts": time.time_ns()})
            _ended.add(partition)
            if len(_ended) == PARTITIONS:
                _mark(_summary())


def _mark(mark: dict[str, Any]) -> None:
    """Append one line for the harness; a handful per run, so a blocking write is fine."""
    # A file, not a topic: a consumer waiting on an idle topic spins on this broker and
    # would steal CPU from the worker being measured.
    with MARKS.open("ab") as out:
        out.write(orjson.dumps(mark) + b"\n")


def _summary() -> dict[str, Any]:
    """What the table holds and how late events were; computed after the timed window."""
    p50, p95, p99 = percentiles_ms(_latencies_ns)
    return {
        "kind": "summary",
        "events": sum(_seen.values()),
        "table_total": sum(counts.values()) + sum(_in_memory.values()),
        "table_keys": len(counts) + len(_in_memory),
        "p50_ms": p50,
        "p95_ms": p95,
        "p99_ms": p99,
    }
