"""Event positions on the push topic: WS ids, SSE id vectors and channel partitions.

A position is ``"{partition}-{offset}"`` (for example ``"3-17"``): the WS ``id``
of an event. An SSE ``id:`` is a *vector* of such positions joined by ``.``
(``"0-5.3-17"``), one per partition the stream's channels live on, because one
``Last-Event-ID`` must resume every channel of the stream and offsets are only
ordered within a partition. A partition missing from a vector means "nothing
seen there yet", i.e. from the start of retention; ``"0"`` and ``"earliest"``
(the empty vector) mean that for every partition.
"""

from __future__ import annotations

import re

from aiokafka.partitioner import murmur2

from streams.errors import InvalidInput

INVALID_POSITION = "INVALID_POSITION"
EARLIEST_WORDS = frozenset({"0", "earliest"})
# Offsets are int64 and partitions int32 on the wire; the digit caps keep parsing cheap.
_POSITION = re.compile(r"(\d{1,9})-(\d{1,19})")
MAX_VECTOR = 256

# A resume point per partition: replay what comes *after* this offset (-1 = from the start).
Vector = dict[int, int]


def format_position(partition: int, offset: int) -> str:
    """The WS id of the record at ``offset`` of ``partition``."""
    return f"{partition}-{offset}"


def parse_position(raw: str) -> tuple[int, int]:
    """``(partition, offset)`` of a WS id; ``InvalidInput`` when malformed."""
    match = _POSITION.fullmatch(raw)
    if match is None:
        raise InvalidInput(
            f"{raw[:40]!r} is not an event id (expected 'partition-offset', '0' or 'earliest')",
            code=INVALID_POSITION,
        )
    return int(match.group(1)), int(match.group(2))


def is_earliest(raw: str) -> bool:
    """Whether ``raw`` asks for a replay from the start of retention."""
    return raw.strip().lower() in EARLIEST_WORDS


def format_vector(vector: Vector) -> str:
    """The SSE id for the per-partition positions delivered so far."""
    text = ".".join(format_position(p, o) for p, o in sorted(vector.items()) if o >= 0)
    return text or "earliest"


def parse_vector(raw: str) -> Vector:
    """The per-partition resume points of a ``Last-Event-ID`` (empty: from the start)."""
    if is_earliest(raw):
        return {}
    parts = raw.split(".")
    if len(parts) > MAX_VECTOR:
        raise InvalidInput("the event id has too many parts", code=INVALID_POSITION)
    vector: Vector = {}
    for part in parts:
        partition, offset = parse_position(part)
        if partition in vector:
            raise InvalidInput("the event id names a partition twice", code=INVALID_POSITION)
        vector[partition] = offset
    return vector


def partition_for(channel: str, partitions: int) -> int:
    """The partition the default (murmur2) partitioner writes ``channel``'s records to."""
    # Same arithmetic as aiokafka's DefaultPartitioner and the Java client.
    digest: int = murmur2(channel.encode())
    return (digest & 0x7FFFFFFF) % partitions
