"""Search suggestions over the real stack: ``GET /v1/search/suggest`` on 10,000 products.

    python -m bench.suggest [--products 10000] [--seconds 5] [--connections 8]

Starts an embedded stack and loads ``--products`` products into the read model and
the suggestion index with the very calls the catalog agent makes for each
(``ProductRepository.project`` then ``SuggestionRepository.index``), gives a third of
them popularity as the analytics agent's hour windows would, then, one at a time and
each as its own process served like ``mercato gateway``, drives with the same load
generator, for the same time, over the same keep-alive connections:

- ``bare``: ``bench.gateway_auth``'s bare aiohttp endpoint (the floor of this machine);
- ``search``: the product search ``GET /v1/products?q=lap`` (the in-run baseline:
  what a search box would cost without suggestions);
- ``suggest-1``, ``suggest-word``, ``suggest-phrase``: ``q=l`` (the widest prefix),
  ``q=lap`` and ``q=gaming lap`` (a several-word query, filtered), all with the
  response cache off, so every request reads the index;
- ``suggest-cached``: ``q=lap`` with the response cache on (all hits after the first);
- ``suggest-mix``: ``--samples`` requests one after another (one connection, no
  queueing), the cache off, cycling through every 1- to 4-letter prefix of the
  vocabulary and two-word queries: what one typing user waits for, with p95 (wrk
  reports p50 and p99 only).

Before the runs, the ``write cost`` lines: the embedded server's CPU (``/proc``) per
``SuggestionRepository`` write while loading (a new product), recording the
popularity, renaming and re-saving (a new price, the name unchanged) ``--products //
50`` products: what the index costs the catalog and analytics agents per change.

The lines to read: p95 of ``suggest-mix`` (issue #16's target: under 20 ms on
10,000 products), the p50/p99 of the ``suggest-*`` runs under load, and
``suggest-word/search`` (how much cheaper than searching).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import os
import random
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from bench.common import (
    BenchError,
    BenchResult,
    CpuMeter,
    machine_note,
    percentiles_ms,
    print_table,
    server_process,
    write_json,
)
from bench.gateway_auth import CPU_US, _measure, added_line, bench_settings, seed
from bench.load import wrk_available
from config import Settings
from mercato._procs import free_port

ADJECTIVES = ("gaming", "compact", "wireless", "vintage", "smart", "rugged", "silent",
              "premium", "budget", "classic", "modular", "portable", "ergonomic", "solar")
NOUNS = ("laptop", "lamp", "keyboard", "mouse", "chair", "desk", "kettle", "speaker",
         "monitor", "backpack", "blender", "camera", "drone", "lantern", "ladder", "mug")
CATEGORIES = ("Electronics", "Home", "Office", "Kitchen", "Outdoor", "Lighting", "Audio",
              "Photography", "Furniture", "Travel", "Garden", "Laptops")
QUERIES = {"suggest-1": "l", "suggest-word": "lap", "suggest-phrase": "gaming lap"}
SEARCH = "/v1/products?q=lap&limit=8"
BATCH = 32  # products loaded concurrently


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.suggest", description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first")
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections")
    parser.add_argument("--products", type=int, default=10_000, help="products loaded")
    parser.add_argument("--samples", type=int, default=2000, help="requests of suggest-mix")
    # Read by bench.gateway_auth's _measure, whose runs these are; not offered here.
    parser.add_argument("--profile", type=Path, default=None, help=argparse.SUPPRESS)
    return parser


def _path(q: str) -> str:
    return f"/v1/search/suggest?q={quote(q)}&limit=8"


@dataclasses.dataclass
class WriteCost:
    """The embedded server's CPU per suggestion-index write, by kind of product change."""

    cases: dict[str, tuple[int, float]] = dataclasses.field(default_factory=dict)

    def add(self, name: str, changes: int, cpu_s: float) -> None:
        """``changes`` writes of kind ``name`` cost ``cpu_s`` seconds of server CPU."""
        self.cases[name] = (changes, cpu_s)

    def lines(self) -> list[str]:
        """One line per case: writes and server CPU per write."""
        return [f"write cost {name}: {n} writes, {cpu * 1000 / n:.2f} ms server CPU each"
                for name, (n, cpu) in self.cases.items()]

    def as_dict(self) -> dict[str, Any]:
        """The cases for the JSON report, in ms of server CPU per write."""
        return {name: {"writes": n, "server_cpu_ms_each": round(cpu * 1000 / n, 3)}
                for name, (n, cpu) in self.cases.items()}


def _facts(i: int, name: str, category: str, version: int, now: str) -> dict[str, Any]:
    return {
        "productId": f"bench-product-{i}", "sellerId": "bench-seller", "name": name,
        "description": f"{name}, for the bench", "category": category,
        "price": str(Decimal(10 + i % 90 + version - 1)), "currency": "USD",
        "status": "active", "fileIds": [], "createdAt": now, "updatedAt": now,
        "version": version,
    }


async def load_products(settings: Settings, count: int, mongo_pid: int) -> WriteCost:
    """``count`` products indexed as the catalog agent indexes them, a third of them popular.

    Each product is first projected (``ProductRepository.project``), then indexed
    (``SuggestionRepository.index``), as the agent does; only the indexing is metered
    (the server's CPU, from ``/proc``), for three kinds of change: a new product, a
    third of the products given popularity, and renames and re-saves (a new price, the
    name unchanged) of ``count // 50`` products.
    """
    from stores.mongo import database, ensure_indexes, mongo_client
    from stores.products import Product, ProductRepository
    from stores.suggestions import SuggestionRepository

    rng = random.Random(16)
    cost = WriteCost()
    client = mongo_client(settings, app_name="mercato-bench")
    try:
        db = database(client, settings)
        await ensure_indexes(db)
        products, suggestions = ProductRepository(db), SuggestionRepository(db)
        now = datetime.datetime.now(datetime.UTC).isoformat()

        async def projected(facts: list[dict[str, Any]]) -> list[Product]:
            stored: list[Product] = []
            for start in range(0, len(facts), BATCH):
                batch = facts[start:start + BATCH]
                await asyncio.gather(*(products.project(f) for f in batch))
                for f in batch:
                    got = await products.get(f["productId"])
                    if got is None:
                        raise BenchError(f"{f['productId']} was not projected")
                    stored.append(got)
            return stored

        async def metered(stored: list[Product]) -> float:
            meter = CpuMeter({"mongo": mongo_pid})
            meter.start()
            for start in range(0, len(stored), BATCH):
                await asyncio.gather(*(suggestions.index(p) for p in stored[start:start + BATCH]))
            return meter.stop()["mongo"]

        names = [f"{rng.choice(ADJECTIVES).title()} {rng.choice(NOUNS).title()} {i}"
                 for i in range(count)]
        categories = [rng.choice(CATEGORIES) for _ in range(count)]
        cost.add("new product", count, await metered(await projected(
            [_facts(i, names[i], categories[i], 1, now) for i in range(count)])))
        popular = {
            f"bench-product-{i}": {"orders": rng.randrange(20), "views": rng.randrange(500)}
            for i in range(0, count, 3)
        }
        meter = CpuMeter({"mongo": mongo_pid})
        meter.start()
        changed = await suggestions.record_popularity(3_600_000 * 480_000, popular)
        cost.add("popularity", max(changed, 1), meter.stop()["mongo"])
        # Renamed and re-saved products are put back as they were, so every run reads the
        # same index: the renames' second write is itself a rename.
        some = range(1, count, 50)
        renamed = await projected(
            [_facts(i, f"Renamed {names[i]}", categories[i], 2, now) for i in some])
        back = await projected([_facts(i, names[i], categories[i], 3, now) for i in some])
        cost.add("rename", 2 * len(some), await metered(renamed) + await metered(back))
        cost.add("re-save", len(some), await metered(await projected(
            [_facts(i, names[i], categories[i], 4, now) for i in some])))
    finally:
        await client.close()
    return cost


def mixed_queries() -> list[str]:
    """Every 1- to 4-letter prefix of the vocabulary, and an adjective with a noun's start."""
    words = sorted({*ADJECTIVES, *NOUNS, *(c.casefold() for c in CATEGORIES)})
    prefixes = sorted({w[:n] for w in words for n in range(1, 5)})
    pairs = [f"{a} {n[:3]}" for a in ADJECTIVES for n in NOUNS[::3]]
    return prefixes + pairs


async def sample_latency(
    name: str, env: dict[str, str], port: int, scratch: Path, samples: int
) -> BenchResult:
    """``samples`` sequential suggestions over one connection: unqueued p50/p95/p99."""
    base = f"http://127.0.0.1:{port}"
    queries = mixed_queries()
    gateway = [sys.executable, "-m", "mercato", "gateway"]
    latencies: list[int] = []
    async with server_process(gateway, env, base, scratch / f"{name}.log"):
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=connector) as session:
            started = time.perf_counter()
            for i in range(samples):
                sent = time.perf_counter_ns()
                async with session.get(base + _path(queries[i % len(queries)])) as response:
                    await response.read()
                    if response.status != 200:
                        raise BenchError(f"{name}: answered {response.status}")
                latencies.append(time.perf_counter_ns() - sent)
            elapsed = time.perf_counter() - started
    p50, p95, p99 = percentiles_ms(latencies)
    return BenchResult(name=name, events=samples, seconds=elapsed, p50_ms=p50, p95_ms=p95,
                       p99_ms=p99)


async def _run(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    from mercato.embedded import EmbeddedStack

    load = os.getloadavg()[0]
    stack = EmbeddedStack(scratch / "stack", startup_timeout=60.0)
    endpoints = await asyncio.to_thread(stack.start)
    try:
        settings = bench_settings(endpoints, scratch)
        token = await seed(settings)
        started = datetime.datetime.now(datetime.UTC)
        cost = await load_products(settings, args.products, stack.pids["mongo"])
        loaded_s = (datetime.datetime.now(datetime.UTC) - started).total_seconds()
        print(f"loaded {args.products} products in {loaded_s:.1f} s")
        print("\n".join(cost.lines()))
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("MERCATO_")}
        results: list[BenchResult] = []
        port = free_port()
        bare = [sys.executable, "-m", "bench.bare_http", "--port", str(port)]
        results.append(await _measure("bare", bare, base_env, port, token, args, scratch))
        gateway = [sys.executable, "-m", "mercato", "gateway"]
        runs = [("search", SEARCH, False),
                *((name, _path(q), False) for name, q in QUERIES.items()),
                ("suggest-cached", _path(QUERIES["suggest-word"]), True)]
        for name, path, cached in runs:
            port = free_port()
            variant = dataclasses.replace(settings, http_port=port, response_cache=cached)
            env = {**base_env, **variant.to_env()}
            try:
                results.append(await _measure(name, gateway, env, port, token, args, scratch,
                                              path=path))
            except BenchError as exc:
                if name != "search":
                    raise
                # On the embedded server a search of many products can outlast the load
                # generator's timeout: the baseline is then missing, not the suggestions.
                print(f"baseline left out: {exc}")
        port = free_port()
        variant = dataclasses.replace(settings, http_port=port, response_cache=False)
        results.append(await sample_latency(
            "suggest-mix", {**base_env, **variant.to_env()}, port, scratch, args.samples
        ))
    finally:
        await asyncio.to_thread(stack.stop)
    by = {r.name: r for r in results}
    print_table(results)
    pairs = [(by["suggest-word"], by["bare"]), (by["suggest-cached"], by["suggest-word"])]
    if "search" in by:
        pairs.insert(0, (by["suggest-word"], by["search"]))
    lines = [added_line(a, b, CPU_US) for a, b in pairs]
    print("\n".join(lines))
    return {
        "date": datetime.date.today().isoformat(),
        "machine": machine_note(),
        "load_average_1m_at_start": load,
        "command": " ".join(["python -m bench.suggest", *sys.argv[1:]]),
        "load_generator": "wrk -t1" if wrk_available() else "aiohttp client",
        "params": {"seconds": args.seconds, "warmup": args.warmup,
                   "connections": args.connections, "products": args.products,
                   "samples": args.samples},
        "load_seconds": loaded_s,
        "results": [r.as_dict() for r in results],
        "ratio_lines": lines,
        "write_cost": cost.as_dict(),
        "server_cpu_us_per_request": dict(CPU_US),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; exit 1 with the reason when a figure is not trustworthy."""
    args = _parser().parse_args(argv)
    if args.seconds <= 0 or min(args.connections, args.products, args.samples) < 1:
        _parser().error("--seconds, --connections, --products and --samples must be positive")
    with tempfile.TemporaryDirectory(prefix="mercato-bench-suggest-") as scratch:
        try:
            report = asyncio.run(_run(args, Path(scratch)))
        except BenchError as exc:
            print(f"suggest failed: {exc}", file=sys.stderr)
            return 1
    print(f"machine: {report['machine']}, 1-min load average at start "
          f"{report['load_average_1m_at_start']:.2f}, load: {report['load_generator']}")
    print(f"results: {write_json('suggest', report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
