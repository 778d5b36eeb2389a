"""The worker SIGKILLed mid-batch under load, twice: no effect lost, none doubled (#13, #14).

Orders arrive over REST at a steady rate (captures, declines, out-of-stock rejections,
refunds of completed orders) while the worker is killed with records in flight, restarted
at once from its RocksDB tables, killed again and restarted with its local tables deleted
(restored from the changelogs alone). Once every accepted order has ended, each effect is
counted where it lands: stock in the inventory and its read model, captures and refunds
on the ``payments`` topic, order events on ``orders``, notifications and grants in
MongoDB, and the read model against the saga's own last state on its changelog.

Records may repeat (at-least-once); effects must not: every check counts distinct ids
or documents, never records.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import orjson
import pytest

from agents.runtime.changelogs import TABLES_DIR
from config import Settings
from gateway.identity.auth import TokenService
from mercato.embedded import Endpoints
from streams.admin import ensure_topics
from streams.envelope import Envelope
from tests.conftest import make_settings
from tests.support.files import eventually, mongo, upload
from tests.support.group_offsets import group_position
from tests.support.http import gateway_client
from tests.support.orders import ENDS, Client, account, product, read_all, read_topics, settled
from tests.support.processes import running_worker

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(300)]

RATE = 20.0  # orders per second offered
SECONDS = 20.0  # of load
FIRST_KILL = 5.0  # seconds into the load
SECOND_KILL = 13.0  # at the earliest; the restarted worker must have processed first
STOCK = 70  # per product: the load asks for a little more, so the last orders are rejected
PRODUCTS_PER_SELLER = 2
SELLERS = 3
PIPELINE = ("order-saga", "inventory-commands", "payment-commands", "files", "outbox")
# A 503 says nothing was applied: the client retries with the same Idempotency-Key.
RETRY_PAUSE = 0.5
PATIENCE = 150.0  # seconds an order may take to be accepted, or to end, across both kills


@dataclasses.dataclass(frozen=True, slots=True)
class Placed:
    """One accepted order, by a buyer of its own (so per-user counts are per-order counts)."""

    order_id: str
    buyer_id: str
    headers: dict[str, str]
    items: tuple[tuple[str, int], ...]
    method: str


@dataclasses.dataclass
class Shop:
    """Sellers (real accounts: they get e-mails) and their products, each with a file."""

    sellers: dict[str, dict[str, str]]
    products: dict[str, tuple[str, str]]  # product id -> (seller id, file id)


class Load:
    """Orders at ``RATE`` for ``SECONDS``; every 7th captured order is cancelled once complete."""

    def __init__(self, client: Client, env: Settings, shop: Shop) -> None:
        self._client = client
        self._tokens = TokenService(env)
        self._products = sorted(shop.products)
        self.placed: list[Placed] = []
        self.cancelled: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self.started = 0.0

    def start(self) -> None:
        """Begin offering orders (open loop: one every 1/RATE s, answered or not)."""
        self.started = time.monotonic()
        self._ticker = asyncio.create_task(self._tick())

    async def at(self, seconds: float) -> None:
        """Return once the load has run ``seconds``."""
        await asyncio.sleep(max(0.0, self.started + seconds - time.monotonic()))

    async def finished(self) -> None:
        """Wait for the ticker and every placement and cancellation it started."""
        assert self._ticker is not None
        await self._ticker
        while self._tasks:
            await asyncio.gather(*self._tasks)

    async def aclose(self) -> None:
        """Cancel whatever still runs (a failed test)."""
        for task in [self._ticker, *self._tasks]:
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in [self._ticker, *self._tasks] if t is not None),
                             return_exceptions=True)

    async def _tick(self) -> None:
        for n in range(int(RATE * SECONDS)):
            self._spawn(self._order(n))
            await asyncio.sleep(max(0.0, self.started + (n + 1) / RATE - time.monotonic()))

    def _spawn(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            await work

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _order(self, n: int) -> None:
        # 1 in 5 declined; a third of the baskets hold two products.
        method = "tok_declined" if n % 5 == 4 else "tok_visa"
        first, second = self._products[n % len(self._products)], \
            self._products[(n * 7 + 3) % len(self._products)]
        items = ((first, 1), (second, 1)) if n % 3 == 0 and first != second \
            else ((first, 1 + n % 2),)
        buyer_id = f"chaos-buyer-{uuid.uuid4().hex[:12]}"
        headers = {"Authorization":
                   f"Bearer {self._tokens.issue_access(buyer_id, ['buyer'])}"}
        order_id = await self._accepted(headers, items, method)
        placed = Placed(order_id, buyer_id, headers, items, method)
        self.placed.append(placed)
        if method == "tok_visa" and n % 7 == 0:
            await self._refund(placed)

    async def _accepted(self, headers: dict[str, str], items: tuple[tuple[str, int], ...],
                        method: str) -> str:
        keyed = {**headers, "Idempotency-Key": uuid.uuid4().hex}
        body = {"items": [{"productId": p, "quantity": q} for p, q in items],
                "paymentMethod": method}
        deadline = time.monotonic() + PATIENCE
        while True:
            response = await self._client.post("/v1/orders", headers=keyed, json=body)
            if response.status == 202:
                order_id: str = (await response.json())["orderId"]
                return order_id
            refused = await response.json()
            assert response.status == 503, refused
            assert response.headers.get("Retry-After"), refused
            assert time.monotonic() < deadline, f"no order accepted in {PATIENCE}s: {refused}"
            await asyncio.sleep(RETRY_PAUSE)

    async def _refund(self, placed: Placed) -> None:
        order = await settled(self._client, placed.headers, placed.order_id, within=PATIENCE)
        if order["status"] != "completed":
            return  # rejected: out of stock by then
        path = f"/v1/orders/{placed.order_id}/cancel"
        deadline = time.monotonic() + PATIENCE
        while True:
            response = await self._client.post(path, headers=placed.headers)
            # 409: an earlier attempt's cancel was applied though its answer came too late.
            if response.status in (202, 409):
                self.cancelled.add(placed.order_id)
                return
            assert response.status == 503, await response.text()
            assert time.monotonic() < deadline, f"cancel of {placed.order_id} never accepted"
            await asyncio.sleep(RETRY_PAUSE)


async def _open_shop(client: Client) -> Shop:
    shop = Shop(sellers={}, products={})
    for _ in range(SELLERS):
        seller_id, seller = await account(client, "seller", patience=90)
        shop.sellers[seller_id] = seller
        for i in range(PRODUCTS_PER_SELLER):
            uploaded = await upload(client, seller, f"%PDF-1.4 book {i}".encode(),
                                    name=f"book-{i}.pdf")
            assert uploaded.status == 201, await uploaded.text()
            file_id = (await uploaded.json())["fileId"]
            product_id = await product(client, seller, stock=STOCK, file_ids=[file_id])
            shop.products[product_id] = (seller_id, file_id)
    return shop


async def _kill_with_records_in_flight(env: Settings, proc: asyncio.subprocess.Process) -> int:
    """SIGKILL the worker while its group has records not committed; the offsets it had."""
    committed, in_flight = await group_position(env, PIPELINE)
    proc.kill()
    await proc.wait()
    # Committed offsets trail the records handled by a commit interval at least, so under
    # load there are always some: they are what the next worker gets again.
    assert in_flight > 0, "the worker was killed with nothing in flight"
    return committed


def _last_values(records: list[tuple[str, bytes, bytes]]) -> dict[str, Any]:
    """Each key's last value on a table's changelog (the table as a restore rebuilds it)."""
    last: dict[str, Any] = {}
    for _, key, value in records:
        last[orjson.loads(key)] = orjson.loads(value) if value else None
    return last


async def test_a_worker_killed_mid_batch_twice_loses_and_doubles_nothing(
    stack: Endpoints, tmp_path: Path,
) -> None:
    env = dataclasses.replace(
        make_settings(stack, tmp_path),
        # The saga's deadlines are not under test here: an order whose charge outlived its
        # deadline ends failed with its capture refunded, a correct end these counts would
        # have to tell apart from a lost one. Both outages stay well inside these.
        saga_reserve_timeout=90.0, saga_charge_timeout=90.0, saga_refund_timeout=90.0,
        payment_call_timeout=0.5, payment_attempts=2, payment_backoff=0.05,
    )
    await ensure_topics(env)
    logs = [env.data_dir / f"worker-{run}.log" for run in range(3)]
    async with gateway_client(env) as client, contextlib.AsyncExitStack() as workers:
        proc = await workers.enter_async_context(running_worker(env, logs[0]))
        shop = await _open_shop(client)
        load = Load(client, env, shop)
        workers.push_async_callback(load.aclose)
        load.start()

        await load.at(FIRST_KILL)
        committed = await _kill_with_records_in_flight(env, proc)
        # Restarted at once, from its RocksDB tables (and their changelogs, repaired).
        proc = await workers.enter_async_context(running_worker(env, logs[1]))

        async def progressed() -> bool:
            return (await group_position(env, PIPELINE))[0] > committed + 50

        # The old member's heartbeat can pass for the new one's: commits are the new one's.
        await eventually(progressed, within=90, what="the restarted worker to commit records")
        await load.at(SECOND_KILL)
        await _kill_with_records_in_flight(env, proc)
        # Its local tables gone: the next run restores every table from its changelog.
        shutil.rmtree(env.data_dir / TABLES_DIR)
        await workers.enter_async_context(running_worker(env, logs[2]))
        await load.finished()

        ends = time.monotonic() + PATIENCE
        orders: dict[str, dict[str, Any]] = {}
        for placed in load.placed:
            wanted = {"refunded"} if placed.order_id in load.cancelled else ENDS
            try:
                orders[placed.order_id] = await settled(
                    client, placed.headers, placed.order_id, until=wanted,
                    within=max(1.0, ends - time.monotonic()))
            except AssertionError as exc:
                raise AssertionError(f"{exc}: {await _story(env, placed.order_id)}") from None
        assert len(orders) == int(RATE * SECONDS)
        statuses = Counter(o["status"] for o in orders.values())
        # The mix the load means to cover, each end reached.
        assert {"completed", "payment_failed", "refunded"} <= set(statuses), statuses

        await _saga_agrees_with_read_model(env, orders)
        await _stock_is_initial_minus_completed(client, env, shop, orders)
        await _each_capture_once(env, orders)
        await _order_events_once(env, orders)
        await _notifications_and_grants_once(env, shop, load.placed, orders)


async def _saga_agrees_with_read_model(env: Settings, orders: dict[str, dict[str, Any]]) -> None:
    """The saga's last state (its changelog: what a restore rebuilds) is the read model's.

    Same status, same version: a saga table change lost from its changelog would show as a
    read model ahead of the restored saga, whose next versions it then refuses.
    """
    sagas = _last_values(await read_topics(env, [f"{env.app_id}-order-sagas-changelog"]))
    db_client, db = mongo(env)
    try:
        stored = {d["_id"]: d async for d in db["orders"].find({}, {"status": 1, "version": 1})}
    finally:
        await db_client.close()
    # One order per Idempotency-Key: retries after 503s created nothing of their own.
    assert set(sagas) == set(orders)
    assert set(stored) == set(orders)
    disagree = {
        oid: ((sagas[oid] or {}).get("status"), (sagas[oid] or {}).get("version"),
              order["status"], stored[oid]["version"])
        for oid, order in orders.items()
        if ((sagas[oid] or {}).get("status"), (sagas[oid] or {}).get("version"))
        != (order["status"], stored[oid]["version"])}
    if disagree:
        first = next(iter(disagree))
        raise AssertionError(f"saga (status, version) vs read model: {disagree}; the first: "
                             f"{await _story(env, first)}")


async def _story(env: Settings, order_id: str) -> dict[str, list[tuple[Any, ...]]]:
    """What the topics hold about one order, to explain a failed check."""
    saga = [(v["version"], v["status"], v.get("phase"), v["payment"]["status"],
             (v.get("last") or {}).get("messageId"))
            for _, k, raw in await read_topics(env, [f"{env.app_id}-order-sagas-changelog"])
            if orjson.loads(k) == order_id and raw and (v := orjson.loads(raw))]
    records = [(topic.rsplit(".", 1)[-1], e.type, e.id, e.data.get("status"))
               for topic, _, raw in await read_all(env, ["order-saga", "orders"])
               if (e := Envelope.decode(raw)).data.get("orderId") == order_id]
    return {"saga changelog": saga, "records": records}


async def _stock_is_initial_minus_completed(
    client: Client, env: Settings, shop: Shop, orders: dict[str, dict[str, Any]],
) -> None:
    sold: Counter[str] = Counter()
    for order in orders.values():
        if order["status"] == "completed":
            for item in order["items"]:
                sold[item["productId"]] += item["quantity"]
    want = {pid: STOCK - sold[pid] for pid in shop.products}
    assert all(level >= 0 for level in want.values()), want

    found: dict[str, int] = {}

    async def projected() -> bool:
        for pid in shop.products:
            response = await client.get(f"/v1/products/{pid}")
            found[pid] = (await response.json())["stock"]
        return found == want

    try:
        # The stock projection works through one product's changes in order, each its own
        # commit: on a loaded two-core box it can trail the orders' ends by tens of seconds.
        await eventually(projected, within=90, what="the products' stock")
    except AssertionError as exc:
        table = _last_values(await read_topics(env, [f"{env.app_id}-inventory-stock-changelog"]))
        mongo_client, db = mongo(env)
        try:
            stored = {doc["_id"]: (doc["stock"], doc["position"])
                      async for doc in db["stock"].find({"_id": {"$in": list(want)}})}
        finally:
            await mongo_client.close()
        changes = [(e.data["productId"], e.data["currentStock"], offset)
                   for offset, (_, _, raw) in enumerate(await read_all(env, ["inventory"]))
                   if (e := Envelope.decode(raw)).type == "inventory.stock_changed"
                   and e.data["productId"] in want]
        raise AssertionError(f"{exc}: want {want}, answered {found}, stock rows {stored}, "
                             f"inventory table "
                             f"{ {pid: (table.get(pid) or {}).get('stock') for pid in want} }, "
                             f"last stock changes {changes[-12:]}") from None
    db_client, db = mongo(env)
    try:
        rows = {d["_id"]: d["stock"] async for d in db["stock"].find({"_id": {"$in": list(want)}})}
    finally:
        await db_client.close()
    assert rows == want
    # The inventory's own answer (its table, restored from the changelog): one unit added.
    for pid, (seller_id, _) in shop.products.items():
        response = await client.patch(f"/v1/products/{pid}/stock", json={"quantityChange": 1},
                                      headers=shop.sellers[seller_id])
        assert response.status == 200, await response.text()
        assert (await response.json())["currentStock"] == want[pid] + 1


async def _each_capture_once(env: Settings, orders: dict[str, dict[str, Any]]) -> None:
    """Every capture belongs to a completed or refunded order and happened once per key."""
    key_of: dict[str, set[str]] = defaultdict(set)  # payment id -> idempotency keys
    captures: dict[str, set[str]] = defaultdict(set)  # payment id -> captured event ids
    references: dict[str, set[str]] = defaultdict(set)
    captured_by_order: dict[str, set[str]] = defaultdict(set)
    refunds_by_order: dict[str, set[str]] = defaultdict(set)  # order id -> refund event ids
    for _, _, value in await read_all(env, ["payment-commands", "payments"]):
        event = Envelope.decode(value)
        data = event.data
        if event.type == "payment.charge_requested":
            key_of[data["paymentId"]].add(data["idempotencyKey"])
        elif event.type == "payment.captured":
            captures[data["paymentId"]].add(event.id)
            references[data["paymentId"]].add(data["reference"])
            captured_by_order[data["orderId"]].add(data["paymentId"])
        elif event.type == "payment.refunded":
            refunds_by_order[data["orderId"]].add(event.id)
    assert set(captured_by_order) <= set(orders)
    for order_id, order in orders.items():
        paid = captured_by_order.get(order_id, set())
        if order["status"] in ("completed", "refunded"):
            assert len(paid) == 1, (order_id, order["status"], paid)
            (payment_id,) = paid
            assert len(captures[payment_id]) == 1, (order_id, captures[payment_id])
            assert len(key_of[payment_id]) == 1, (order_id, key_of[payment_id])
            assert references[payment_id] == {order["payment"]["reference"]}, order_id
        else:
            assert not paid, (order_id, order["status"], paid)
        want_refunds = 1 if order["status"] == "refunded" else 0
        assert len(refunds_by_order.get(order_id, set())) == want_refunds, order_id


async def _order_events_once(env: Settings, orders: dict[str, dict[str, Any]]) -> None:
    """One event per order transition: a repeated record keeps its id."""
    ids: dict[tuple[str, str], set[str]] = defaultdict(set)
    for _, _, value in await read_all(env, ["orders"]):
        event = Envelope.decode(value)
        status = "pending" if event.type == "order.placed" else event.data["status"]
        ids[(event.data["orderId"], status)].add(event.id)
    doubled = {k: v for k, v in ids.items() if len(v) > 1}
    assert not doubled, f"order transitions emitted twice: {doubled}"
    for order_id, order in orders.items():
        if (order_id, "pending") not in ids or (order_id, order["status"]) not in ids:
            raise AssertionError(f"order {order_id} ({order['status']}) lacks an event: "
                                 f"{order['history']}, {await _story(env, order_id)}")


async def _notifications_and_grants_once(
    env: Settings, shop: Shop, placed: list[Placed], orders: dict[str, dict[str, Any]],
) -> None:
    want: Counter[tuple[str, str]] = Counter()
    for p in placed:
        status = orders[p.order_id]["status"]
        if status in ("completed", "refunded"):
            want[(p.buyer_id, "order_completed")] += 1
            for seller_id in {shop.products[pid][0] for pid, _ in p.items}:
                want[(seller_id, "order_received")] += 1
        if status == "refunded":
            want[(p.buyer_id, "order_refunded")] += 1
        if status == "payment_failed":
            want[(p.buyer_id, "payment_failed")] += 1
    kinds = sorted({kind for _, kind in want})
    outbox = env.data_dir / "outbox" / "messages.jsonl"

    async def differences() -> list[Any]:
        db_client, db = mongo(env)
        try:
            found = Counter([(d["userId"], d["type"]) async for d in db["notifications"].find(
                {"type": {"$in": kinds}})])
            grants = {(d["fileId"], d["userId"]): d async for d in db["file_grants"].find()}
        finally:
            await db_client.close()
        wrong: list[Any] = [("notifications", k, found[k], want[k])
                            for k in found.keys() | want.keys() if found[k] != want[k]]
        # A grant per purchase (its event id), revoked once by a refund: never doubled.
        for p in placed:
            status = orders[p.order_id]["status"]
            for pid, _ in p.items:
                grant = grants.get((shop.products[pid][1], p.buyer_id))
                events = [] if grant is None else grant["events"]
                if status not in ("completed", "refunded"):
                    if grant is not None:
                        wrong.append(("granted", p.order_id, status, events))
                elif grant is None or grant["active"] is not (status == "completed") or \
                        len(events) != len(set(events)) or \
                        len(events) != (1 if status == "completed" else 2):
                    wrong.append(("grant", p.order_id, status, grant))
        # Sellers' e-mails: at least once each (delivery is at-least-once: docs/reliability.md).
        mailed = {(m["params"].get("orderId"), m["userId"])
                  for m in map(orjson.loads, outbox.read_bytes().splitlines())
                  if m["template"] == "order_received"}
        for p in placed:
            if orders[p.order_id]["status"] in ("completed", "refunded"):
                wrong.extend(("not mailed", p.order_id, seller_id)
                             for seller_id in {shop.products[pid][0] for pid, _ in p.items}
                             if (p.order_id, seller_id) not in mailed)
        return wrong

    # The notifications and files agents project after the order ends: wait, bounded. A
    # doubled effect never goes away, so waiting cannot hide one.
    last: list[Any] = []

    async def exact() -> bool:
        last[:] = await differences()
        return not last

    try:
        await eventually(exact, within=30, what="notifications, grants and e-mails to be exact")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {last[:20]}") from None
