"""The ceiling: a raw aiokafka produce→consume loop, no framework in between."""

from __future__ import annotations

import asyncio
import time

import orjson
from aiokafka import AIOKafkaConsumer

from bench.common import BenchError, BenchResult, create_topics, percentiles_ms, self_peak_rss_mb
from bench.workload import new_producer, produce_events


async def _wait_assigned(consumer: AIOKafkaConsumer, partitions: int, limit: float) -> None:
    """Poll until the group has handed this consumer every partition."""
    # Nothing is produced yet, so these polls cannot swallow an event.
    try:
        async with asyncio.timeout(limit):
            while len(consumer.assignment()) < partitions:
                await consumer.getmany(timeout_ms=100)
    except TimeoutError:
        raise BenchError(
            f"raw consumer got {len(consumer.assignment())}/{partitions} partitions "
            f"within {limit:.0f}s; is the broker's group coordinator working?"
        ) from None


async def _consume(consumer: AIOKafkaConsumer, events: int) -> tuple[list[int], int]:
    """Consume ``events`` records; return per-event latencies (ns) and the last receive time."""
    latencies: list[int] = []
    last = 0
    while len(latencies) < events:
        batches = await consumer.getmany(timeout_ms=200, max_records=5000)
        for records in batches.values():
            for record in records:
                # Decode like an application would; Faust decodes every event too.
                sent = orjson.loads(record.value)["ts"]
                last = time.time_ns()
                latencies.append(last - sent)
    return latencies, last


async def run_ceiling(
    bootstrap: str, *, topic: str, events: int, partitions: int, payload: int, limit: float
) -> BenchResult:
    """Produce ``events`` and consume them in a group; rate is first send → last receive."""
    await create_topics(bootstrap, {topic: partitions})
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"{topic}.group",
        auto_offset_reset="earliest",
        client_id="mercato-bench-raw-consumer",
    )
    producer = new_producer(bootstrap)
    await consumer.start()
    try:
        await producer.start()
        try:
            await _wait_assigned(consumer, partitions, limit)
            consuming = asyncio.create_task(_consume(consumer, events))
            try:
                async with asyncio.timeout(limit):
                    started = await produce_events(producer, topic, events, payload)
                    latencies, finished = await consuming
            except TimeoutError:
                raise BenchError(
                    f"raw produce→consume of {events} events did not finish in {limit:.0f}s"
                ) from None
            finally:
                # A no-op once it finished; on failure, stop it and wait without re-raising.
                consuming.cancel()
                await asyncio.wait([consuming])
        finally:
            await producer.stop()
    finally:
        await consumer.stop()
    p50, p95, p99 = percentiles_ms(latencies)
    return BenchResult(
        name="raw",
        events=events,
        seconds=(finished - started) / 1e9,
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
        peak_rss_mb=self_peak_rss_mb(),
    )
