"""A data team's consumer: read a public Mercato topic from the start and print envelopes.

Start the stack (``make run``), then, from the clone::

    .venv/bin/python examples/consume_kafka.py                        # mercato.users
    .venv/bin/python examples/consume_kafka.py --topic orders --max-records 50

Each record prints as one JSON line ``{"topic", "partition", "offset", "key", "ceType",
"envelope"}``, where ``envelope`` is the record's value: ``{id, type, version, key,
occurredAt, source, correlationId, causationId, data}``, described by the JSON Schemas
at ``/schemas/events/{type}/v{version}`` and ``/asyncapi.json``. Delivery is
at-least-once: a real consumer dedupes on the envelope's ``id``.

The broker comes from ``--bootstrap``, else ``MERCATO_KAFKA_URL`` (``kafka://host:port``,
comma-separated), else the Kafka port that ``mercato dev`` remembered in
``.mercato/ports.json``, else ``127.0.0.1:39092``. ``--topic`` is a catalogue name
(``users``, ``orders``, …) under ``MERCATO_TOPIC_PREFIX`` (default ``mercato.``), or a
full topic name. Without ``--group`` nothing is committed and every run starts from the
beginning. It stops after ``--max-records`` records, or when ``--timeout`` seconds pass.
Exit status: 0 when it printed records (or ``--max-records 0``), 1 when none came in
time, 2 when no broker answers or the topic does not exist.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

DEV_PORTS = Path(".mercato") / "ports.json"
DEV_KAFKA = "127.0.0.1:39092"
CONNECT_TIMEOUT = 15.0


class Unavailable(Exception):
    """No broker, or no such topic on it."""


def bootstrap_default() -> str:
    """The broker from the environment, else the dev stack's remembered port."""
    url = os.environ.get("MERCATO_KAFKA_URL")
    if url:
        return ",".join(part.strip().removeprefix("kafka://") for part in url.split(","))
    try:
        return f"127.0.0.1:{int(json.loads(DEV_PORTS.read_text())['kafka'])}"
    except (OSError, ValueError, KeyError, TypeError):
        return DEV_KAFKA


def topic_name(name: str) -> str:
    """A catalogue name under the topic prefix; a name containing a dot is taken as is."""
    return name if "." in name else os.environ.get("MERCATO_TOPIC_PREFIX", "mercato.") + name


def line(record: Any) -> str:
    """One record as a JSON line."""
    headers = {k: v.decode(errors="replace") for k, v in record.headers or ()}
    return json.dumps({
        "topic": record.topic, "partition": record.partition, "offset": record.offset,
        "key": record.key.decode(errors="replace") if record.key is not None else None,
        "ceType": headers.get("ce_type"), "envelope": json.loads(record.value),
    })


async def consume(args: argparse.Namespace) -> int:
    """Print up to ``--max-records`` records; how many were printed."""
    topic = topic_name(args.topic)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=args.bootstrap.split(","), group_id=args.group,
        auto_offset_reset="earliest", enable_auto_commit=args.group is not None,
    )
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            await consumer.start()
            if topic not in await consumer.topics():
                raise Unavailable(f"the broker at {args.bootstrap} has no topic {topic!r}")
    except (KafkaError, OSError, TimeoutError) as exc:
        await consumer.stop()
        raise Unavailable(f"no Kafka broker answers at {args.bootstrap} ({exc!r})") from exc
    except Unavailable:
        await consumer.stop()
        raise
    printed = 0
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + args.timeout
        while printed < args.max_records and (left := deadline - time.monotonic()) > 0:
            batches = await consumer.getmany(timeout_ms=int(min(left, 1.0) * 1000),
                                             max_records=args.max_records - printed)
            for records in batches.values():
                for record in records:
                    print(line(record), flush=True)
                    printed += 1
    finally:
        await consumer.stop()
    return printed


def main() -> int:
    """Parse the arguments, consume, map the outcome to the exit status."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--bootstrap", default=bootstrap_default(),
                        help="host:port[,host:port] (default: %(default)s)")
    parser.add_argument("--topic", default="users",
                        help="catalogue name or full topic name (default: %(default)s)")
    parser.add_argument("--group", help="a consumer group that commits its offsets")
    parser.add_argument("--max-records", type=int, default=10,
                        help="stop after this many records (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="stop after this many seconds (default: %(default)s)")
    args = parser.parse_args()
    # aiokafka logs each failed connection; the message below already says what to do.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        printed = asyncio.run(consume(args))
    except Unavailable as exc:
        print(f"{exc}.\nStart the stack with `make run` (its banner shows the Kafka address), "
              "or pass --bootstrap / set MERCATO_KAFKA_URL.", file=sys.stderr)
        return 2
    print(f"{printed} records from {topic_name(args.topic)}", file=sys.stderr)
    return 0 if printed or args.max_records == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
