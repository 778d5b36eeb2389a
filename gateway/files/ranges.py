"""HTTP conditional and range requests for file content (RFC 9110 sections 13 and 14).

Semantics, deliberately narrow:
- ``If-None-Match`` matching the strong ETag (the quoted sha256), or ``*``, answers 304.
- One byte range (``a-b``, ``a-``, ``-n``) answers 206 with ``Content-Range``; a range
  that selects no byte answers 416 with ``Content-Range: bytes */size``.
- Several ranges (``a-b,c-d``) are not served as multipart/byteranges: the whole
  representation is sent with 200, which RFC 9110 permits (a server may ignore Range).
- A syntactically invalid Range, a non-``bytes`` unit, or an ``If-Range`` that does
  not match the ETag is ignored: 200 with everything.
"""

from __future__ import annotations

import dataclasses
import re

from streams.errors import RangeNotSatisfiable

_SPEC = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


@dataclasses.dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes ``start`` to ``end`` (exclusive) of a representation of ``size`` bytes."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        """Bytes in the range."""
        return self.end - self.start

    @property
    def partial(self) -> bool:
        """Whether this is less than the whole representation (206 rather than 200)."""
        return (self.start, self.end) != (0, self.size)

    def content_range(self) -> str:
        """The ``Content-Range`` header of a 206."""
        return f"bytes {self.start}-{self.end - 1}/{self.size}"


def etag_of(sha256: str) -> str:
    """The strong ETag of content with this digest."""
    return f'"{sha256}"'


def not_modified(if_none_match: str | None, etag: str) -> bool:
    """Whether ``If-None-Match`` names ``etag`` (weak comparison, as RFC 9110 requires)."""
    if not if_none_match:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags


def select(range_header: str | None, if_range: str | None, *, etag: str, size: int) -> ByteRange:
    """The bytes to send; raises ``RangeNotSatisfiable`` for a single unsatisfiable range."""
    whole = ByteRange(0, size, size)
    if not range_header or (if_range is not None and if_range.strip() != etag):
        return whole
    unit, _, specs = range_header.partition("=")
    if unit.strip().lower() != "bytes" or not specs or "," in specs:
        return whole
    match = _SPEC.match(specs)
    if match is None or match.group(1) == match.group(2) == "":
        return whole
    first, last = match.group(1), match.group(2)
    if first == "":
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable("the range selects no byte", size=size)
        return ByteRange(max(0, size - suffix), size, size)
    start = int(first)
    end = size if last == "" else min(int(last) + 1, size)
    if last != "" and int(last) < start:
        return whole  # invalid (last before first): ignored like any malformed Range
    if start >= size:
        raise RangeNotSatisfiable(f"the file has {size} bytes", size=size)
    return ByteRange(start, end, size)
