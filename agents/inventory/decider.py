"""Inventory: the stock of every product, reserved, released and adjusted one command at a time.

Commands arrive keyed by product id, so one agent decides each product's stock in
order and the table below is the source of truth for it:

    product id -> {
        "stock": int,             # available units, never negative
        "created": bool,          # an adjustment (the catalog's initial stock) has been applied
        "recent": {reservationId: {status, orderId, quantity, stock, at, ...}},  # newest
        "applied": {adjust command id: decision},   # recent, bounded
        "sequence": int,          # stock changes decided so far (StockChanged.sequence)
    }
    "reservation:{reservationId}" -> {status, orderId, quantity, stock, at, ...}

A reservation's record is its decision (reserved / rejected / released), stored before
any effect runs, in the same table write as the stock it changed: in the product's
``recent`` while it is among the newest ``KEEP_RECENT``, then under a key of its own
(written before the product entry that lets it go, and in the product's partition, like
every write made for the product's commands). So a product's entry stays small however
many orders it sells (it once held every reservation of every completed order, rewritten
on each sale), and a reservation stays releasable (a refund) for as long as the table
lives. A redelivered reserve or release therefore changes nothing twice and repeats the
same events: ids derive from the reservation id, times and levels come from the record.
Adjustments are not naturally idempotent, so they are deduplicated by the command's
envelope id in ``applied``.

Once its order has ended and the retention has passed (``agents.saga.retention``), the
saga sends ``inventory.forget_requested`` and the reservation's record is deleted (its
key, or its place in ``recent``); the stock stays as it is. Every reserve and release of
that order was sent before its last change, so once the record may be gone each is older
than the retention: such a command finding no record is ignored (logged), never decided
anew, so a late copy neither holds stock again nor leaves a record behind.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import MutableMapping
from datetime import datetime, timedelta
from typing import Any

from agents.inventory.announcer import Announcer
from agents.runtime.effects import Effects
from agents.runtime.replies import record_expired
from streams.envelope import Envelope, format_time, utcnow
from streams.events.inventory import (
    AdjustRequested,
    ForgetRequested,
    ReleaseRequested,
    ReserveRequested,
)

log = logging.getLogger(__name__)
# Redelivery happens within seconds; these are plenty to recognise it.
KEEP_APPLIED = 64
# Reservations kept in their product's entry: enough for the redeliveries of seconds later
# to find theirs without a second read; older ones are read from their own key.
KEEP_RECENT = 32
Entry = dict[str, Any]


def reservation_key(reservation_id: str) -> str:
    """The table key of a reservation that has left its product's ``recent``."""
    return f"reservation:{reservation_id}"


def empty_entry() -> Entry:
    """The state of a product the inventory has never heard of."""
    return {"stock": 0, "created": False, "recent": {}, "applied": {}}


class InventoryDecider:
    """Decides one inventory command against the product's stock and carries it out."""

    def __init__(
        self, table: MutableMapping[str, Any], effects: Effects, *, retention: float,
    ) -> None:
        self._table = table
        self._effects = effects
        self._announce = Announcer(effects)
        self._retention = timedelta(seconds=retention)

    async def handle(self, raw: bytes, *, now: datetime | None = None) -> str:
        """Process one record; returns what happened (for logs and tests)."""
        envelope = Envelope.decode(raw)
        now = now or utcnow()
        if envelope.type == "inventory.reserve_requested":
            return await self._reserve(envelope, envelope.payload(ReserveRequested), now)
        if envelope.type == "inventory.release_requested":
            return await self._release(envelope, envelope.payload(ReleaseRequested), now)
        if envelope.type == "inventory.forget_requested":
            return self._forget(envelope.payload(ForgetRequested))
        if envelope.type == "inventory.adjust_requested":
            return await self._adjust(envelope, envelope.payload(AdjustRequested), now)
        log.warning("inventory agent ignores %s", envelope.type)
        return "ignored"

    def _entry(self, product_id: str) -> Entry:
        # A copy: the table is only changed by assignment, which also writes the changelog.
        stored = self._table.get(product_id)
        entry = copy.deepcopy(stored) if stored is not None else empty_entry()
        entry.setdefault("recent", {})  # stored before reservations left the entry
        return entry

    def _record(self, entry: Entry, reservation_id: str) -> dict[str, Any] | None:
        """The stored record of ``reservation_id`` (a copy), if any."""
        found = entry["recent"].get(reservation_id)
        if found is None:
            found = self._table.get(reservation_key(reservation_id))
        if found is None:  # the layout before reservations left the entry
            found = entry.get("reservations", {}).get(reservation_id)
        return None if found is None else dict(found)

    def _store(self, product_id: str, entry: Entry, reservation_id: str,
               record: dict[str, Any]) -> None:
        """Store ``record`` with ``entry`` (one write), moving the oldest out to their keys."""
        recent: dict[str, Any] = entry["recent"]
        recent.pop(reservation_id, None)
        recent[reservation_id] = record
        moving = dict(entry.pop("reservations", {}))  # the old layout's, moved once
        moving.pop(reservation_id, None)
        while len(recent) > KEEP_RECENT:
            oldest = next(iter(recent))
            moving[oldest] = recent.pop(oldest)
        # Their own keys first: until the entry below is written, the entry still holds them.
        for rid, moved in moving.items():
            self._table[reservation_key(rid)] = moved
        self._table[product_id] = entry

    async def _reserve(self, envelope: Envelope, command: ReserveRequested, now: datetime) -> str:
        if command.quantity <= 0:
            raise ValueError(f"reservation {command.reservation_id} has quantity <= 0")
        entry = self._entry(command.product_id)
        record = self._record(entry, command.reservation_id)
        if record is None and self._outlived(envelope, now):
            return "late"
        if record is None:
            record = _decide_reserve(entry, command, now)
            if record["status"] == "reserved":
                entry["stock"] = record["stock"]
                record["sequence"] = _next_sequence(entry)
            self._store(command.product_id, entry, command.reservation_id, record)
        elif "at" not in record:
            # Released before this reserve arrived: the saga has moved on; reserving now
            # would hold stock nobody will ever release.
            log.warning("reserve %s arrived after its release", command.reservation_id)
            return "stale"
        await self._announce.reservation(envelope, command, record)
        return "rejected" if record["status"] == "rejected" else "reserved"

    async def _release(self, envelope: Envelope, command: ReleaseRequested, now: datetime) -> str:
        entry = self._entry(command.product_id)
        record = self._record(entry, command.reservation_id)
        if record is None and self._outlived(envelope, now):
            return "late"
        if record is None or "releasedAt" not in record:
            record = dict(record or {"orderId": command.order_id, "status": "released"})
            record["releasedAt"] = format_time(now)
            record["released"] = 0
            if record["status"] == "reserved":
                entry["stock"] += record["quantity"]
                record.update(status="released", released=record["quantity"])
                record["releasedStock"] = entry["stock"]
                record["releasedSequence"] = _next_sequence(entry)
            self._store(command.product_id, entry, command.reservation_id, record)
        await self._announce.release(envelope, command, record)
        return "released" if record["released"] else "noop"

    def _forget(self, command: ForgetRequested) -> str:
        rid = command.reservation_id
        if reservation_key(rid) in self._table:
            del self._table[reservation_key(rid)]
        entry = self._entry(command.product_id)
        held_here = rid in entry["recent"] or rid in entry.get("reservations", {})
        if held_here:
            entry["recent"].pop(rid, None)
            entry.get("reservations", {}).pop(rid, None)
            self._table[command.product_id] = entry
        return "forgotten"

    def _outlived(self, envelope: Envelope, now: datetime) -> bool:
        """Whether a reservation command is older than the retention: its record may be gone."""
        sent = datetime.fromisoformat(envelope.occurred_at)
        if now - sent < self._retention:
            return False
        log.warning("%s for reservation of order %s ignored: sent %s, longer ago than the "
                    "retention, and no record of it is kept", envelope.type,
                    envelope.data.get("orderId"), envelope.occurred_at)
        return True

    async def _adjust(self, envelope: Envelope, command: AdjustRequested, now: datetime) -> str:
        entry = self._entry(command.product_id)
        decision = entry["applied"].get(envelope.id)
        if decision is None:
            if command.deadline is not None and now > command.deadline:
                # The gateway already answered 503; applying it now would surprise the client.
                await record_expired(
                    self._effects, envelope, deadline=command.deadline, now=now,
                    source=self._announce.source,
                )
                return "expired"
            decision = _decide_adjust(entry, command, now)
            if decision["outcome"] == "accepted":
                entry["stock"] = decision["stock"]
                entry["created"] = True
                decision["sequence"] = _next_sequence(entry)
            entry["applied"][envelope.id] = decision
            _trim(entry["applied"], KEEP_APPLIED)
            self._table[command.product_id] = entry
        await self._announce.adjustment(envelope, command, decision)
        return str(decision["outcome"])


def _decide_reserve(entry: Entry, command: ReserveRequested, now: datetime) -> dict[str, Any]:
    """The outcome of one reservation against the stock as it is now."""
    record: dict[str, Any] = {
        "orderId": command.order_id,
        "quantity": command.quantity,
        "at": format_time(now),
    }
    if not entry["created"]:
        return {**record, "status": "rejected", "reason": "unknown_product", "available": 0}
    if entry["stock"] < command.quantity:
        return {
            **record, "status": "rejected", "reason": "out_of_stock", "available": entry["stock"]
        }
    return {**record, "status": "reserved", "stock": entry["stock"] - command.quantity}


def _decide_adjust(entry: Entry, command: AdjustRequested, now: datetime) -> dict[str, Any]:
    """The outcome of one stock adjustment; the stock never goes below zero."""
    after = entry["stock"] + command.quantity_change
    if after < 0:
        return {
            "outcome": "rejected",
            "code": "INSUFFICIENT_STOCK",
            "detail": f"the stock is {entry['stock']}; a change of "
            f"{command.quantity_change} would take it below zero",
        }
    return {
        "outcome": "accepted",
        "stock": after,
        "reason": "adjusted" if entry["created"] else "created",
        "at": format_time(now),
    }


def _next_sequence(entry: Entry) -> int:
    """Number the product's next stock change (``StockChanged.sequence``)."""
    entry["sequence"] = int(entry.get("sequence", 0)) + 1
    return int(entry["sequence"])


def _trim(applied: dict[str, Any], keep: int) -> None:
    while len(applied) > keep:
        applied.pop(next(iter(applied)))
