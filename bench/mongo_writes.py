"""What one write costs the embedded MongoDB-wire server, by indexes, document size and batching.

    python -m bench.mongo_writes [--updates 400] [--batch 50]

Starts secantus alone and reads its CPU time from ``/proc`` around each case.
Every case updates ``--updates`` existing documents (one ``$set`` of two fields,
like a guarded projection) in a fresh collection, so the cases differ only in
what is named. The first case (no secondary index, small document) is the
same-run baseline the others are compared with: absolute figures move with the
machine, the ratios much less. Cases:

- ``indexes N``: the ``$set`` touches no indexed field, N secondary indexes exist;
- ``bytes B``: no secondary index, the document is about B bytes;
- ``bulk N``: the same updates as ``bulk_write(ordered=False)`` of N operations;
- ``whole-doc set, 6 indexes``: ``$set`` of every field (unchanged values in the
  indexed ones), as ``OrderRepository.project`` writes;
- ``order doc, former/current indexes``: an order snapshot's whole-document ``$set``
  (via ``OrderRepository.project``'s update shape) under the indexes before #13 and now;
- ``stock on product doc``: the ``$set`` of ``stock`` on a product document with
  the ``products`` indexes (search terms included), as the stock projection wrote
  before ``stores.stock``; ``stock row`` is the same on a ``{_id, stock, position}`` row.

The last line is the summary, in this fixed form:

    mongo writes: baseline U us/update; indexes 6 I us; bytes 4096 S us; bulk 50 K us;
    orders former F us current C us; stock on product P us, stock row R us

(on one line).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient, IndexModel, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

from bench.common import BenchError, CpuMeter, machine_note, write_json
from mercato.embedded import EmbeddedStack, Service
from stores import orders, products
from stores.search import search_fields

Collection = AsyncCollection[dict[str, Any]]
INDEX_COUNTS = (0, 1, 3, 6)
DOC_BYTES = (256, 1024, 4096)
BULK_SIZES = (10, 50)
SMALL = 256
# The orders indexes before #13 (two for the stuck list's $or, one for the review check),
# kept here as the baseline the current ``stores.orders.INDEXES`` is measured against.
FORMER_ORDER_INDEXES = [
    IndexModel([("buyerId", 1), ("createdAt", -1), ("_id", -1)], name="by_buyer_newest"),
    IndexModel([("sellerIds", 1), ("createdAt", -1), ("_id", -1)], name="by_seller_newest"),
    IndexModel([("buyerId", 1), ("items.productId", 1), ("status", 1)], name="purchases"),
    IndexModel([("deadline.at", 1)], name="by_deadline"),
    IndexModel([("payment.status", 1)], name="by_payment_status"),
    IndexModel([("createdAt", -1), ("_id", -1)], name="newest"),
]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.mongo_writes", description=__doc__)
    parser.add_argument("--updates", type=int, default=400, help="updates per case")
    parser.add_argument("--batch", type=int, default=50, help="bulk size quoted in the summary")
    return parser


def _doc(i: int, size: int) -> dict[str, Any]:
    # Six independent fields for the indexes, plus padding up to about ``size`` bytes.
    return {"_id": f"d{i}", "version": 0, **{f"k{n}": f"v{i}-{n}" for n in range(6)},
            "pad": "x" * max(0, size - 120)}


async def _fresh(db: Any, name: str, *, indexes: int, size: int, count: int) -> Collection:
    collection: Collection = db[name]
    await collection.drop()
    if indexes:
        await collection.create_indexes(
            [IndexModel([(f"k{n}", 1)], name=f"k{n}") for n in range(indexes)])
    await collection.insert_many([_doc(i, size) for i in range(count)])
    return collection


def _update(i: int, version: int) -> tuple[dict[str, Any], dict[str, Any]]:
    return {"_id": f"d{i}", "version": {"$lt": version}}, {"$set": {"version": version,
                                                                    "status": f"s{version}"}}


async def _one_by_one(collection: Collection, count: int) -> None:
    for i in range(count):
        await collection.update_one(*_update(i, 1))


async def _whole_doc(collection: Collection, count: int) -> None:
    for i in range(count):
        fields = {k: v for k, v in _doc(i, SMALL).items() if k != "_id"}
        await collection.update_one({"_id": f"d{i}", "version": {"$lt": 1}},
                                    {"$set": {**fields, "version": 1}})


def _bulk(size: int) -> Callable[[Collection, int], Awaitable[None]]:
    async def write(collection: Collection, count: int) -> None:
        for start in range(0, count, size):
            ops = [UpdateOne(*_update(i, 1)) for i in range(start, min(count, start + size))]
            await collection.bulk_write(ops, ordered=False)
    return write


def _product(i: int) -> dict[str, Any]:
    name, category = f"Walnut desk lamp {i}", "Home lighting"
    description = "A warm, dimmable lamp with a solid walnut base and a linen shade."
    return {"_id": f"d{i}", "version": 0, "status": "active", "sellerId": f"s{i % 10}",
            "name": name, "nameKey": name.casefold(), "description": description,
            "category": category, "categoryKey": category.casefold(), "price": "12.50",
            "priceMicros": 12_500_000, "currency": "USD", "stock": 10, "stockPosition": 0,
            "terms": search_fields(name=name, category=category, description=description)}


async def _stock_updates(collection: Collection, count: int) -> None:
    for i in range(count):
        await collection.update_one({"_id": f"d{i}", "version": {"$lt": 1}},
                                    {"$set": {"stock": 9, "version": 1}})


def _order(i: int, version: int) -> dict[str, Any]:
    at = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)
    deadline = {"step": "charge", "at": at} if version == 0 else None
    return {"_id": f"d{i}", "buyerId": f"b{i % 100}", "sellerIds": ["s"], "status": "paid",
            "items": [{"productId": f"p{i % 8}", "sellerId": "s", "quantity": 1,
                       "unitPrice": "5.00", "currency": "USD"}],
            "total": "5.00", "currency": "USD",
            "payment": {"status": "captured", "provider": "sim", "reference": f"r{i}"},
            "history": [{"status": "pending", "at": at}], "deadline": deadline,
            "createdAt": at, "updatedAt": at, "version": version}


async def _order_case(db: Any, pid: int, count: int, indexes: list[IndexModel]) -> float:
    collection: Collection = db["bench_orders"]
    await collection.drop()
    await collection.create_indexes(indexes)
    await collection.insert_many([_order(i, 0) for i in range(count)])
    meter = CpuMeter({"mongo": pid})
    meter.start()
    for i in range(count):
        doc = _order(i, 1)
        fields = {k: v for k, v in doc.items() if k != "_id"}
        await collection.update_one({"_id": doc["_id"], "version": {"$lt": 1}},
                                    {"$set": fields, "$unset": {orders.STUCK_FIELD: ""}})
    return meter.stop()["mongo"] * 1e6 / count


async def _stock_case(db: Any, pid: int, count: int, *, on_product: bool) -> float:
    collection: Collection = db["bench_stock"]
    await collection.drop()
    if on_product:
        await collection.create_indexes(products.INDEXES[products.COLLECTION])
        await collection.insert_many([_product(i) for i in range(count)])
    else:
        await collection.insert_many([{"_id": f"d{i}", "version": 0, "stock": 10}
                                      for i in range(count)])
    meter = CpuMeter({"mongo": pid})
    meter.start()
    await _stock_updates(collection, count)
    return meter.stop()["mongo"] * 1e6 / count


async def _case(db: Any, meter_pid: int, *, indexes: int, size: int, count: int,
                write: Callable[[Collection, int], Awaitable[None]]) -> float:
    """Server CPU microseconds per update of one case."""
    collection = await _fresh(db, "bench_writes", indexes=indexes, size=size, count=count)
    meter = CpuMeter({"mongo": meter_pid})
    meter.start()
    await write(collection, count)
    spent = meter.stop()["mongo"]
    if await collection.count_documents({"version": 1}) != count:
        raise BenchError("not every update applied; the figures would be meaningless")
    return spent * 1e6 / count


async def _run(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    only: tuple[Service, ...] = ("mongo",)
    services = EmbeddedStack(scratch / "stack", services=only, startup_timeout=60.0)
    with services as endpoints:
        pid = services.pids["mongo"]
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(endpoints.mongo_url)
        try:
            db = client["bench_mongo_writes"]
            n = args.updates
            # Warm the server (imports, first-collection setup) outside every measured case.
            await _case(db, pid, indexes=0, size=SMALL, count=50, write=_one_by_one)
            baseline = await _case(db, pid, indexes=0, size=SMALL, count=n, write=_one_by_one)
            by_indexes = {k: await _case(db, pid, indexes=k, size=SMALL, count=n,
                                         write=_one_by_one) for k in INDEX_COUNTS}
            by_bytes = {b: await _case(db, pid, indexes=0, size=b, count=n, write=_one_by_one)
                        for b in DOC_BYTES}
            sizes = sorted({*BULK_SIZES, args.batch})
            by_bulk = {s: await _case(db, pid, indexes=0, size=SMALL, count=n, write=_bulk(s))
                       for s in sizes}
            # Bulk with the orders collection's former index count: do the savings add up?
            bulk_indexed = await _case(db, pid, indexes=6, size=SMALL, count=n,
                                       write=_bulk(args.batch))
            whole_doc = await _case(db, pid, indexes=6, size=SMALL, count=n, write=_whole_doc)
            order_former = await _order_case(db, pid, n, FORMER_ORDER_INDEXES)
            order_now = await _order_case(db, pid, n, orders.INDEXES[orders.COLLECTION])
            on_product = await _stock_case(db, pid, n, on_product=True)
            row = await _stock_case(db, pid, n, on_product=False)
            await client.drop_database(db.name)
        finally:
            await client.close()
    return {"baseline_us": baseline, "indexes_us": by_indexes, "bytes_us": by_bytes,
            "bulk_us": by_bulk, "bulk_6_indexes_us": bulk_indexed,
            "whole_doc_6_indexes_us": whole_doc, "stock_on_product_us": on_product,
            "order_former_indexes_us": order_former, "order_current_indexes_us": order_now,
            "stock_row_us": row, "updates": n,
            "batch": args.batch, "machine": machine_note()}


def _print(report: dict[str, Any]) -> None:
    base = report["baseline_us"]

    def row(label: str, us: float) -> None:
        print(f"{label:<24}{us:>10.0f} us/update{us / base:>8.2f}x")

    row("baseline (0 idx, 256 B)", base)
    for k, us in report["indexes_us"].items():
        row(f"indexes {k}", us)
    for b, us in report["bytes_us"].items():
        row(f"bytes {b}", us)
    for s, us in report["bulk_us"].items():
        row(f"bulk {s}", us)
    row(f"bulk {report['batch']}, 6 indexes", report["bulk_6_indexes_us"])
    row("whole-doc set, 6 indexes", report["whole_doc_6_indexes_us"])
    row("order doc, former indexes", report["order_former_indexes_us"])
    row("order doc, current indexes", report["order_current_indexes_us"])
    row("stock on product doc", report["stock_on_product_us"])
    row("stock row", report["stock_row_us"])


def summary_line(report: dict[str, Any]) -> str:
    """The benchmark's last line (fixed form: docs quote it)."""
    return (f"mongo writes: baseline {report['baseline_us']:.0f} us/update; "
            f"indexes 6 {report['indexes_us'][6]:.0f} us; "
            f"bytes 4096 {report['bytes_us'][4096]:.0f} us; "
            f"bulk {report['batch']} {report['bulk_us'][report['batch']]:.0f} us; "
            f"orders former {report['order_former_indexes_us']:.0f} us "
            f"current {report['order_current_indexes_us']:.0f} us; "
            f"stock on product {report['stock_on_product_us']:.0f} us, "
            f"stock row {report['stock_row_us']:.0f} us")


def main(argv: list[str] | None = None) -> int:
    """Run every case; exit 1 with the reason when a figure is not trustworthy."""
    args = _parser().parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mercato-bench-mongo-") as scratch:
        try:
            report = asyncio.run(_run(args, Path(scratch)))
        except BenchError as exc:
            print(f"mongo writes benchmark failed: {exc}", file=sys.stderr)
            return 1
    _print(report)
    print(f"machine: {report['machine']}")
    print(f"results: {write_json('mongo_writes', report)}")
    print(summary_line(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
