"""bench.gateway_auth's ratio line: the req/s ratio with the server CPU it adds beside it."""

from __future__ import annotations

import re

from bench.common import BenchResult
from bench.gateway_auth import added_line

LINE = re.compile(
    r"^ratio [a-z0-9-]+/[a-z0-9-]+ = \d+\.\d\d; µs added per request = -?\d+\.\d "
    r"\(server CPU [a-z0-9-]+ \d+\.\d, [a-z0-9-]+ \d+\.\d\)$"
)


def test_the_ratio_line_says_the_cpu_added_per_request_beside_the_ratio() -> None:
    full = BenchResult(name="full", events=88_678, seconds=5.0)
    bare = BenchResult(name="bare", events=95_854, seconds=5.0)
    line = added_line(full, bare, {"full": 39.04, "bare": 32.0})
    assert LINE.match(line), line
    assert line == (
        "ratio full/bare = 0.93; µs added per request = 7.0 (server CPU full 39.0, bare 32.0)"
    )


def test_a_cheaper_numerator_adds_a_negative_figure() -> None:
    nolimit = BenchResult(name="full-nolimit", events=100, seconds=1.0)
    full = BenchResult(name="full", events=90, seconds=1.0)
    line = added_line(nolimit, full, {"full-nolimit": 36.0, "full": 39.0})
    assert LINE.match(line), line
    assert "µs added per request = -3.0 " in line
