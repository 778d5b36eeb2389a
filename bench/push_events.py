"""The benchmark's push event: one shape for the gateway run and the bare loop.

A ``stock.changed``-sized envelope whose ``data`` carries ``benchSentNs`` (wall-clock
nanoseconds when it was published), which ``bench.push_clients`` finds in the byte
stream to time the delivery, and ``benchSeq``, the event's number on its channel (so a
client can tell a gap or a duplicate).
"""

from __future__ import annotations

import uuid
from typing import Any

from streams.envelope import format_time, utcnow


def channel_name(index: int) -> str:
    """The ``index``-th benchmark channel."""
    return f"product:bench-{index:05d}"


def sample_envelope(channel: str, sent_ns: int, seq: int) -> dict[str, Any]:
    """A valid envelope for ``channel`` stamped with ``sent_ns``, its ``seq``-th event."""
    product = channel.removeprefix("product:")
    return {
        "id": uuid.uuid4().hex, "type": "stock.changed", "version": 1, "key": product,
        "occurredAt": format_time(utcnow()), "source": "mercato.bench",
        "correlationId": uuid.uuid4().hex, "causationId": None,
        "data": {"productId": product, "currentStock": 41, "change": -1,
                 "reason": "order", "benchSentNs": sent_ns, "benchSeq": seq},
    }
