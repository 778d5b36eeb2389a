"""Table recovery: changelog records a fresh worker restores per second, beside its two limits.

    python -m bench.restore [--records 400000] [--updates 4] [--value-bytes 300]
                            [--timeout 150] [--profile PATH]

Starts the embedded stack (broker, MongoDB-protocol server, Redis) and fills the changelog
of every table the worker declares (``agents.app``) with ``--records`` records in Faust's
own format (``bench.restore_records``), spread evenly over the tables and their partitions.
Then a real ``mercato worker`` starts on an empty data dir, so it restores everything from
the changelogs into RocksDB. The restore is timed from the worker's first recovery report
in Redis that shows records restored (``stores.heartbeats``, written every second with the
records restored per table) to Faust's "Restore complete" log line, and the worker's and
the broker's CPU are read from ``/proc`` at those two moments; the worker's peak RSS at the
end.

Two baselines load the same records in the same run, the worker stopped:

* ``consumer``: a plain aiokafka consumer reads every changelog partition from the start
  (the broker and the Kafka client, no Faust, no RocksDB);
* ``rocksdb``: the records written into Faust's RocksDB options, one database per table
  partition, in WriteBatches of 1,000 as Faust's recovery applies them (no broker).

So the ratios say which is the limit: the broker's fetches, RocksDB, or Faust's path between
them. ``--profile PATH`` also records the worker with py-spy during the restore (raw
collapsed stacks; py-spy's sampling slows the worker: the JSON marks such a run ``profiled``).
The last line is the summary, in this fixed form (on one line):

    restore: N records; worker R rec/s cpu C ms/1k rss M MB; rocksdb R rec/s cpu C ms/1k;
    consumer R rec/s cpu C ms/1k; ratio worker/rocksdb X worker/consumer Y; load L
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.common import BenchError, machine_note, pid_cpu_seconds, pid_peak_rss_mb, write_json
from bench.order_stack import bench_settings
from bench.restore_records import (
    Fill,
    Restore,
    Sample,
    between,
    chunks,
    summary_line,
    table_records,
    total_restored,
)
from config import Settings
from mercato._procs import log_tail, spawn, terminate
from mercato.embedded import EmbeddedStack
from stores.heartbeats import WorkerHeartbeats
from stores.redisdb import redis_client
from streams.admin import ensure_topics

POLL = 0.05
# Faust's recovery applies a table's records in batches of this many (Table's default
# recovery_buffer_size); the RocksDB baseline writes the same batches.
APPLY_BATCH = 1000
# Faust's recovery logs this once every active changelog partition is at its highwater.
RESTORED_LINE = "Restore complete"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.restore", description=__doc__)
    parser.add_argument("--records", type=int, default=400_000,
                        help="changelog records to restore, over every table")
    parser.add_argument("--updates", type=int, default=4, help="records per key")
    parser.add_argument("--value-bytes", type=int, default=300, help="size of each value")
    parser.add_argument("--timeout", type=float, default=150.0, help="hard limit per phase")
    parser.add_argument("--profile", type=Path, default=None,
                        help="py-spy raw output of the worker during the restore")
    return parser


def _changelogs(settings: Settings) -> tuple[dict[str, str], int]:
    """Each table's changelog topic and the tables' partition count, from the app itself."""
    from agents.app import create_worker_app

    app = create_worker_app(settings, store="memory://").app
    topics = {name: table.changelog_topic.get_topic_name() for name, table in app.tables.items()}
    counts = {table.partitions for table in app.tables.values()}
    if len(counts) != 1:
        raise BenchError(f"the tables have different partition counts: {counts}")
    return topics, counts.pop()


async def _create(settings: Settings, topics: Mapping[str, str], partitions: int) -> None:
    """The changelog topics as Faust declares them (compacted), before anything writes."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        response = await admin.create_topics([
            NewTopic(topic, partitions, settings.kafka_replication,
                     topic_configs={"cleanup.policy": "compact"})
            for topic in topics.values()])
        failed = [(t, code) for t, code, *_ in response.topic_errors if code != 0]
        if failed:
            raise BenchError(f"creating the changelog topics failed: {failed}")
    finally:
        await admin.close()


async def _fill(settings: Settings, fill: Fill, topics: Mapping[str, str]) -> float:
    """Produce every table's records in whole batches per partition; returns the seconds."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all",
                                enable_idempotence=False, max_batch_size=256 * 1024)
    await producer.start()
    started = time.perf_counter()
    try:
        acks: list[asyncio.Future[Any]] = []
        for index, table in enumerate(fill.tables):
            batches: dict[int, Any] = {}
            for partition, key, value in table_records(fill, index):
                batch = batches.setdefault(partition, producer.create_batch())
                if batch.append(key=key, value=value, timestamp=None) is None:
                    acks.append(await producer.send_batch(batch, topics[table],
                                                          partition=partition))
                    batch = batches[partition] = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
            for partition, batch in batches.items():
                acks.append(await producer.send_batch(batch, topics[table], partition=partition))
        await asyncio.gather(*acks)
    finally:
        await producer.stop()
    return time.perf_counter() - started


class _LogWatch:
    """Lines a process appends to its log, read as they come."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0

    def saw(self, text: str) -> bool:
        """Whether ``text`` is in what was appended since the last call (whole lines only)."""
        if not self.path.exists():
            return False
        with self.path.open("rb") as handle:
            handle.seek(self._offset)
            chunk = handle.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self._offset += len(complete)
        return text.encode() in complete


def _profiler(pid: int, out: Path) -> subprocess.Popen[bytes]:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return subprocess.Popen(
        [py_spy, "record", "--pid", str(pid), "--rate", "250", "--format", "raw",
         "--output", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerRestore:
    """The worker's restore, the broker's CPU over the same window, the worker's peak RSS."""

    restore: Restore
    to_restore: int
    broker_cpu_seconds: float
    peak_rss_mb: float
    start_to_restored_seconds: float


async def _worker_restore(settings: Settings, broker_pid: int, records: int, log: Path,
                          args: argparse.Namespace) -> WorkerRestore:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MERCATO_")}
    redis = redis_client(settings)
    heartbeats = WorkerHeartbeats(redis, settings.app_id)
    spawned = time.perf_counter()
    proc = spawn([sys.executable, "-m", "mercato", "worker"], log,
                 env={**env, **settings.to_env()})
    profiler: subprocess.Popen[bytes] | None = None
    watch = _LogWatch(log)
    first: Sample | None = None
    to_restore = 0
    broker_before = 0.0
    try:
        async with asyncio.timeout(args.timeout):
            while not watch.saw(RESTORED_LINE):
                if proc.poll() is not None:
                    raise BenchError(f"the worker exited with {proc.returncode}:\n"
                                     f"{log_tail(log)}")
                reports = await heartbeats.recoveries() if first is None else {}
                restored = 0
                if reports:
                    restored, to_restore = total_restored(next(iter(reports.values())))
                # From the first report that has restored something: one written before
                # the first fetch came back would count the fetch's wait as restoring.
                if restored > 0:
                    first = Sample(time.perf_counter(), restored,
                                   pid_cpu_seconds(proc.pid) or 0.0)
                    broker_before = pid_cpu_seconds(broker_pid) or 0.0
                    if args.profile is not None:
                        profiler = _profiler(proc.pid, args.profile)
                await asyncio.sleep(POLL)
        last = Sample(time.perf_counter(), records, pid_cpu_seconds(proc.pid) or 0.0)
        broker_cpu = (pid_cpu_seconds(broker_pid) or 0.0) - broker_before
        rss = pid_peak_rss_mb(proc.pid) or 0.0
    except TimeoutError:
        raise BenchError(f"the worker did not restore within {args.timeout:.0f}s:\n"
                         f"{log_tail(log)}") from None
    finally:
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(30)
        terminate(proc, 30)
        await redis.aclose()
    if first is None:
        raise BenchError("the restore ended before the worker's first progress report "
                         "(one a second): give it more --records")
    if to_restore != records:
        raise BenchError(f"the worker reported {to_restore} records to restore, "
                         f"{records} were produced")
    return WorkerRestore(restore=between(first, last), to_restore=to_restore,
                         broker_cpu_seconds=broker_cpu, peak_rss_mb=rss,
                         start_to_restored_seconds=last.at - spawned)


async def _consume(settings: Settings, topics: Mapping[str, str],
                   partitions: int) -> tuple[Restore, float]:
    """Read every changelog partition from the start with a plain consumer."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for topic in topics.values() for p in range(partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        read = 0
        started, cpu = time.perf_counter(), time.process_time()
        # Until every partition's position reaches its end offset, not until a count: a
        # compacted changelog holds fewer records than its offsets span.
        waiting = {tp for tp in tps if ends[tp] > 0}
        while waiting:
            batches = await consumer.getmany(timeout_ms=1000)
            read += sum(len(records) for records in batches.values())
            for tp, records in batches.items():
                if records[-1].offset + 1 >= ends[tp]:
                    waiting.discard(tp)
        return Restore(records=read, seconds=time.perf_counter() - started,
                       cpu_seconds=time.process_time() - cpu), float(sum(ends.values()))
    finally:
        await consumer.stop()


def _rocksdb(fill: Fill, directory: Path) -> Restore:
    """Write every record into RocksDB with Faust's options, timing only the writes."""
    import rocksdict
    from faust.stores.rocksdb import RocksDBOptions

    options = RocksDBOptions()
    seconds = cpu = 0.0
    for index, table in enumerate(fill.tables):
        dbs = {p: options.open(directory / f"{table}-{p}.db") for p in range(fill.partitions)}
        try:
            for chunk in chunks(table_records(fill, index), APPLY_BATCH * 10):
                started, began = time.perf_counter(), time.process_time()
                for part in range(0, len(chunk), APPLY_BATCH):
                    batches: dict[int, Any] = {}
                    for partition, key, value in chunk[part:part + APPLY_BATCH]:
                        batch = batches.get(partition)
                        if batch is None:
                            batch = batches[partition] = rocksdict.WriteBatch(raw_mode=True)
                        batch.put(key, value)
                    for partition, batch in batches.items():
                        dbs[partition].write(batch)
                seconds += time.perf_counter() - started
                cpu += time.process_time() - began
        finally:
            for db in dbs.values():
                db.close()
    return Restore(records=fill.records, seconds=seconds, cpu_seconds=cpu)


async def _run(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    load = os.getloadavg()[0]
    services = EmbeddedStack(scratch / "stack", startup_timeout=60.0)
    with services as endpoints:
        # INFO: the end of the restore is Faust's "Restore complete" line.
        settings = dataclasses.replace(bench_settings(endpoints, scratch / "data"),
                                       log_level="INFO")
        settings.data_dir.mkdir(parents=True)
        await ensure_topics(settings)
        topics, partitions = _changelogs(settings)
        fill = Fill(tables=sorted(topics), partitions=partitions, records=args.records,
                    updates=args.updates, value_bytes=args.value_bytes)
        await _create(settings, topics, partitions)
        fill_seconds = await asyncio.wait_for(_fill(settings, fill, topics), args.timeout)
        print(f"filled {len(topics)} changelogs x {partitions} partitions with "
              f"{fill.records} records in {fill_seconds:.1f}s")
        worker = await _worker_restore(settings, services.pids["kafka"], fill.records,
                                       scratch / "worker.log", args)
        print(f"worker restored {worker.restore.records} records in "
              f"{worker.restore.seconds:.2f}s after its first report", flush=True)
        consumer, expected = await asyncio.wait_for(
            _consume(settings, topics, partitions), args.timeout)
    if consumer.records != expected:
        raise BenchError(f"the consumer read {consumer.records} of {expected:.0f} records")
    rocksdb = _rocksdb(fill, scratch / "rocksdb")
    restore = worker.restore
    for name, figures in (("worker", restore), ("rocksdb", rocksdb), ("consumer", consumer)):
        print(f"{name:<9}{figures.records:>9} records {figures.seconds:>7.2f}s "
              f"{figures.rate:>10.0f} rec/s {figures.cpu_ms_per_1k:>7.1f} ms CPU/1k")
    broker_ms = worker.broker_cpu_seconds * 1e6 / max(restore.records, 1)
    print(f"broker cpu during the restore {broker_ms:.1f} ms/1k; worker start to restored "
          f"{worker.start_to_restored_seconds:.1f}s; peak RSS {worker.peak_rss_mb:.0f} MB")
    load_end = os.getloadavg()[0]
    return {
        "summary": summary_line(fill.records, restore, rocksdb, consumer,
                                worker.peak_rss_mb, max(load, load_end)),
        "date": datetime.date.today().isoformat(), "machine": machine_note(),
        "load_average_1m_at_start": load, "load_average_1m_at_end": load_end,
        "command": " ".join(["python -m bench.restore", *sys.argv[1:]]),
        "params": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "tables": sorted(topics), "partitions": partitions, "fill_seconds": fill_seconds,
        "profiled": args.profile is not None,
        "results": {name: {**dataclasses.asdict(r), "rate": r.rate,
                           "cpu_ms_per_1k": r.cpu_ms_per_1k}
                    for name, r in (("worker", restore), ("rocksdb", rocksdb),
                                    ("consumer", consumer))},
        "broker_cpu_ms_per_1k": broker_ms, "worker_peak_rss_mb": worker.peak_rss_mb,
        "worker_start_to_restored_seconds": worker.start_to_restored_seconds,
        "ratio_worker_over_rocksdb": restore.rate / rocksdb.rate if rocksdb.rate else 0.0,
        "ratio_worker_over_consumer": restore.rate / consumer.rate if consumer.rate else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 1 with the reason when a figure is not trustworthy."""
    args = _parser().parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mercato-bench-restore-") as scratch:
        try:
            report = asyncio.run(_run(args, Path(scratch)))
        except BenchError as exc:
            print(f"restore benchmark failed: {exc}", file=sys.stderr)
            return 1
    print(f"machine: {report['machine']}, 1-min load average at start "
          f"{report['load_average_1m_at_start']:.2f}, "
          f"at end {report['load_average_1m_at_end']:.2f}")
    print(f"results: {write_json('restore', report)}")
    print(report["summary"])  # last, always: see the module docstring
    return 0


if __name__ == "__main__":
    sys.exit(main())
