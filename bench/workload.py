"""The event stream every baseline run feeds: keys, payloads, control records, producing."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

KEYS = 1000
# Control records share the data topic so that per-partition ordering tells us what came before.
PING = "ping"
END = "end"


def key_of(seq: int) -> bytes:
    """Keys cycle over ``KEYS`` distinct values so every partition gets a similar share."""
    return f"key-{seq % KEYS:04d}".encode()


def encode_event(seq: int, payload: int) -> bytes:
    """A JSON event of about ``payload`` bytes carrying its send time for latency."""
    # time.time_ns, not perf_counter: the Faust worker reads it from another process.
    body: dict[str, Any] = {"seq": seq, "ts": time.time_ns(), "pad": ""}
    size = len(orjson.dumps(body))
    body["pad"] = "x" * max(0, payload - size)
    return orjson.dumps(body)


def encode_control(kind: str) -> bytes:
    """A ping (readiness probe) or end (everything before me in this partition is sent)."""
    return orjson.dumps({"kind": kind, "ts": time.time_ns()})


def new_producer(bootstrap: str) -> AIOKafkaProducer:
    """The producer both workloads are fed by: acks=all, a short linger, no idempotence."""
    # Idempotence off because Faust's own producer has it off too unless exactly-once is set.
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        enable_idempotence=False,
        client_id="mercato-bench-producer",
    )


async def send_control(producer: AIOKafkaProducer, topic: str, kind: str, partitions: int) -> None:
    """Queue one control record per partition (not awaited: ordering is what matters)."""
    for partition in range(partitions):
        await producer.send(topic, encode_control(kind), key=kind.encode(), partition=partition)


async def produce_events(
    producer: AIOKafkaProducer, topic: str, events: int, payload: int, *, end_partitions: int = 0
) -> int:
    """Send ``events`` events (then optional end markers); return the first send's time_ns.

    Sends are queued without awaiting each ack so the producer batches as a real
    service would; ``send`` itself blocks when the buffer is full (back-pressure).
    aiokafka keeps one in-flight request per broker, so per-partition order holds
    and an end marker really follows every event of its partition.
    """
    started = time.time_ns()
    acks: list[asyncio.Future[Any]] = []
    for seq in range(events):
        acks.append(await producer.send(topic, encode_event(seq, payload), key=key_of(seq)))
    for partition in range(end_partitions):
        acks.append(
            await producer.send(topic, encode_control(END), key=END.encode(), partition=partition)
        )
    await asyncio.gather(*acks)
    return started
