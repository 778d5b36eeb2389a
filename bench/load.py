"""HTTP load generation: ``wrk`` in its own process when installed, else an aiohttp client."""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from collections.abc import Mapping

import aiohttp

from bench.common import BenchError, BenchResult, percentiles_ms

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk_available() -> bool:
    """Whether ``wrk`` is on PATH (``apt-get install wrk``)."""
    return shutil.which("wrk") is not None


async def run_load(
    name: str, url: str, *, headers: Mapping[str, str], connections: int, seconds: float,
    status: int = 200,
) -> BenchResult:
    """Keep-alive GETs of ``url`` for ``seconds``; every answer must have ``status``."""
    if wrk_available():
        return await _wrk(name, url, headers=headers, connections=connections, seconds=seconds,
                          status=status)
    return await _aiohttp(name, url, headers=headers, connections=connections, seconds=seconds,
                          status=status)


async def _wrk(
    name: str, url: str, *, headers: Mapping[str, str], connections: int, seconds: float,
    status: int,
) -> BenchResult:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
    for key, value in headers.items():
        argv += ["-H", f"{key}: {value}"]
    proc = await asyncio.create_subprocess_exec(
        *argv, url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out = (await proc.communicate())[0].decode()
    if proc.returncode != 0:
        raise BenchError(f"wrk failed ({proc.returncode}):\n{out}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+),", out)
    # wrk only counts non-2xx: a run meant to answer 404 must answer nothing else.
    expected_bad = status >= 300 and bad is not None and total is not None and bad[1] == total[1]
    if (bad and not expected_bad) or "Socket errors" in out:
        raise BenchError(f"{name}: some answers were errors, the figure would lie:\n{out}")
    if total is None:
        raise BenchError(f"cannot read wrk's output:\n{out}")
    scale = {"s": 1.0, "ms": 1e-3, "m": 60.0}[total[3]]

    def pct(label: str) -> float:
        found = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, flags=re.M)
        if found is None:
            raise BenchError(f"no {label}th percentile in wrk's output:\n{out}")
        return float(found[1]) * _UNITS[found[2]]

    return BenchResult(name=name, events=int(total[1]), seconds=float(total[2]) * scale,
                       p50_ms=pct("50"), p99_ms=pct("99"))


async def _aiohttp(
    name: str, url: str, *, headers: Mapping[str, str], connections: int, seconds: float,
    status: int,
) -> BenchResult:
    latencies: list[int] = []
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, headers=dict(headers)) as session:
        deadline = time.monotonic() + seconds

        async def worker() -> None:
            while time.monotonic() < deadline:
                sent = time.perf_counter_ns()
                async with session.get(url) as response:
                    await response.read()
                    if response.status != status:
                        raise BenchError(f"{name}: {url} answered {response.status}")
                latencies.append(time.perf_counter_ns() - sent)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    p50, _p95, p99 = percentiles_ms(latencies)
    return BenchResult(name=name, events=len(latencies), seconds=elapsed, p50_ms=p50, p99_ms=p99)
