"""One Kafka record as one line of a partition's file: JSON with its bytes in base64."""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

import orjson


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _bytes(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


@dataclasses.dataclass(frozen=True, slots=True)
class Record:
    """What a restore needs to produce a record again as it was (its offset is informative)."""

    offset: int
    timestamp: int
    key: bytes | None  # None, not b"": a keyless record stays keyless
    value: bytes | None  # None is a tombstone (compacted changelogs)
    headers: tuple[tuple[str, bytes], ...]

    @classmethod
    def of(cls, message: Any) -> Record:
        """From an aiokafka ``ConsumerRecord``."""
        return cls(message.offset, message.timestamp, message.key, message.value,
                   tuple((name, bytes(value or b"")) for name, value in message.headers))

    def line(self) -> bytes:
        """The record as one JSON line."""
        return orjson.dumps({
            "offset": self.offset,
            "timestamp": self.timestamp,
            "key": _b64(self.key),
            "value": _b64(self.value),
            "headers": [[name, _b64(value)] for name, value in self.headers],
        }) + b"\n"

    @classmethod
    def parse(cls, line: bytes) -> Record:
        """The record a :meth:`line` wrote."""
        raw = orjson.loads(line)
        return cls(raw["offset"], raw["timestamp"], _bytes(raw["key"]), _bytes(raw["value"]),
                   tuple((name, base64.b64decode(value)) for name, value in raw["headers"]))
