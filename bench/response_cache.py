"""Public reads with the response cache on vs off, against ``bench.gateway_auth``'s bare baseline.

    python -m bench.response_cache [--seconds 5] [--connections 32] [--products 100]
                                   [--cached-only] [--profile DIR]

Starts an embedded stack, projects ``--products`` products straight into the read model,
then, one at a time and each as its own process served like ``mercato gateway``: the
bare aiohttp endpoint of ``bench.gateway_auth``, and the gateway with
``MERCATO_RESPONSE_CACHE`` on and off, each driven on ``GET /v1/products/{id}`` and on a
product search (``GET /v1/products?q=...``) by the same load generator, for the same
time, over the same keep-alive connections. Nothing changes during a run, so the cached
runs are all hits after the first request: the figure is the cost of a hit.

The lines to read: ``product-cached/bare`` and ``search-cached/bare`` (issue #17's target
>= 0.8) and ``product-cached/product-uncached``, ``search-cached/search-uncached``
(target >= 5 on the embedded MongoDB server).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import os
import sys
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.common import BenchError, BenchResult, machine_note, print_table, write_json
from bench.gateway_auth import CPU_US, _measure, added_line, bench_settings, seed
from bench.load import wrk_available
from config import Settings
from mercato._procs import free_port

PRODUCT_ID = "bench-product-0"
SEARCH = "/v1/products?q=lamp&limit=10"
WORDS = ("lamp", "desk", "chair", "shelf", "mug")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.response_cache", description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections")
    parser.add_argument("--products", type=int, default=100, help="products in the read model")
    parser.add_argument("--cached-only", action="store_true",
                        help="skip the uncached runs (and their ratios): the cost of a hit only")
    # Read by bench.gateway_auth's _measure, whose runs these are.
    parser.add_argument("--profile", type=Path, default=None,
                        help="write py-spy raw stacks of each server here (needs py-spy)")
    return parser


async def seed_products(settings: Settings, count: int) -> None:
    """``count`` products projected as the catalog agent would, with stock rows."""
    from stores.mongo import database, ensure_indexes, mongo_client
    from stores.products import ProductRepository

    client = mongo_client(settings, app_name="mercato-bench")
    try:
        db = database(client, settings)
        await ensure_indexes(db)
        products = ProductRepository(db)
        now = datetime.datetime.now(datetime.UTC).isoformat()
        for i in range(count):
            word = WORDS[i % len(WORDS)]
            await products.project({
                "productId": f"bench-product-{i}", "sellerId": "bench-seller",
                "name": f"{word.title()} {i}", "description": f"A {word} for the bench, no. {i}",
                "category": word.title(), "price": str(Decimal(10 + i % 90)), "currency": "USD",
                "status": "active", "fileIds": [], "createdAt": now, "updatedAt": now,
                "version": 1,
            })
            await products.apply_stock(f"bench-product-{i}", stock=100 + i, position=i)
    finally:
        await client.close()


async def _run(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    from mercato.embedded import EmbeddedStack

    load = os.getloadavg()[0]
    stack = EmbeddedStack(scratch / "stack", startup_timeout=60.0)
    endpoints = await asyncio.to_thread(stack.start)
    try:
        settings = bench_settings(endpoints, scratch)
        token = await seed(settings)
        await seed_products(settings, args.products)
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("MERCATO_")}
        results: list[BenchResult] = []
        port = free_port()
        bare = [sys.executable, "-m", "bench.bare_http", "--port", str(port)]
        results.append(await _measure("bare", bare, base_env, port, token, args, scratch))
        gateway = [sys.executable, "-m", "mercato", "gateway"]
        for cached in (True,) if args.cached_only else (True, False):
            suffix = "cached" if cached else "uncached"
            for kind, path in (("product", f"/v1/products/{PRODUCT_ID}"), ("search", SEARCH)):
                port = free_port()
                variant = dataclasses.replace(settings, http_port=port, response_cache=cached)
                env = {**base_env, **variant.to_env()}
                results.append(await _measure(
                    f"{kind}-{suffix}", gateway, env, port, token, args, scratch, path=path
                ))
    finally:
        await asyncio.to_thread(stack.stop)
    by = {r.name: r for r in results}
    print_table(results)
    pairs = [(by["product-cached"], by["bare"]), (by["search-cached"], by["bare"])]
    if not args.cached_only:
        pairs += [
            (by["product-cached"], by["product-uncached"]),
            (by["search-cached"], by["search-uncached"]),
        ]
    lines = [added_line(a, b, CPU_US) for a, b in pairs]
    print("\n".join(lines))
    return {
        "date": datetime.date.today().isoformat(),
        "machine": machine_note(),
        "load_average_1m_at_start": load,
        "command": " ".join(["python -m bench.response_cache", *sys.argv[1:]]),
        "load_generator": "wrk -t1" if wrk_available() else "aiohttp client",
        "params": {"seconds": args.seconds, "warmup": args.warmup,
                   "connections": args.connections, "products": args.products,
                   "cached_only": args.cached_only, "profiled": args.profile is not None},
        "results": [r.as_dict() for r in results],
        "ratio_lines": lines,
        "server_cpu_us_per_request": dict(CPU_US),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; exit 1 with the reason when a figure is not trustworthy."""
    args = _parser().parse_args(argv)
    if args.seconds <= 0 or args.connections < 1 or args.products < 1:
        _parser().error("--seconds, --connections and --products must be positive")
    with tempfile.TemporaryDirectory(prefix="mercato-bench-rc-") as scratch:
        try:
            report = asyncio.run(_run(args, Path(scratch)))
        except BenchError as exc:
            print(f"response_cache failed: {exc}", file=sys.stderr)
            return 1
    print(f"machine: {report['machine']}, 1-min load average at start "
          f"{report['load_average_1m_at_start']:.2f}, load: {report['load_generator']}")
    print(f"results: {write_json('response_cache', report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
