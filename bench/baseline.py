"""Baseline: raw aiokafka ceiling vs a naive Faust agent, same broker, same run.

    python -m bench.baseline [--events 20000] [--partitions 4] [--payload 256]
                             [--kafka-url kafka://host:port] [--timeout 120]

Without ``--kafka-url`` (or ``MERCATO_KAFKA_URL``) an embedded noida broker is
started on a temp dir and stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from bench.ceiling import run_ceiling
from bench.common import (
    BenchError,
    bootstrap_of,
    kafka_url,
    machine_note,
    print_table,
    ratio_line,
    write_json,
)
from bench.naive import run_naive


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline", description=__doc__)
    parser.add_argument("--events", type=int, default=20_000, help="events per workload")
    parser.add_argument("--partitions", type=int, default=4, help="partitions of each topic")
    parser.add_argument("--payload", type=int, default=256, help="approximate event bytes")
    parser.add_argument("--kafka-url", default=None, help="existing broker (kafka://host:port)")
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="hard limit in seconds for each phase"
    )
    return parser


async def _run(url: str, args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    """Both workloads on fresh, uniquely named topics; ceiling first, on a quiet broker."""
    run_id = uuid.uuid4().hex[:8]
    # Other processes on a 2-core box move these figures; record how busy it was.
    load = os.getloadavg()[0]
    # Each phase applies ``limit`` itself (asyncio.timeout inside) so a failure names the phase.
    common = {"events": args.events, "partitions": args.partitions, "payload": args.payload,
              "limit": args.timeout}
    raw = await run_ceiling(bootstrap_of(url), topic=f"bench.raw.{run_id}.events", **common)
    naive, startup = await run_naive(url, run_id=run_id, datadir=scratch, **common)
    print_table([raw, naive])
    ratio = ratio_line(naive, raw)
    print(ratio)
    print(f"naive worker startup (spawn → all partitions answering) = {startup:.2f} s")
    return {
        "date": datetime.date.today().isoformat(),
        "machine": machine_note(),
        "load_average_1m_at_start": load,
        "command": " ".join(["python -m bench.baseline", *sys.argv[1:]]),
        "params": {**common, "keys": 1000},
        "results": [raw.as_dict(), naive.as_dict()],
        "ratio_naive_over_raw": naive.rate / raw.rate,
        "ratio_line": ratio,
        "naive_worker_startup_s": startup,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the baseline; exit 1 with a one-paragraph reason when a figure is not trustworthy."""
    args = _parser().parse_args(argv)
    if args.events < 1 or args.partitions < 1 or args.payload < 0:
        _parser().error("--events and --partitions must be positive, --payload not negative")
    with tempfile.TemporaryDirectory(prefix="mercato-bench-") as scratch:
        try:
            with kafka_url(args.kafka_url) as url:
                report = asyncio.run(_run(url, args, Path(scratch)))
        except BenchError as exc:
            print(f"baseline failed: {exc}", file=sys.stderr)
            return 1
    load = report["load_average_1m_at_start"]
    print(f"machine: {report['machine']}, 1-min load average at start {load:.2f}")
    print(f"results: {write_json('baseline', report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
