"""The events the inventory agent sends for a recorded decision, identical on every repeat.

Ids derive from the reservation id (or the adjust command's id) and times and
stock levels come from the stored record, so a redelivered command re-sends
byte-for-byte the same results and consumers dedupe them by id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from agents.runtime import caused
from agents.runtime.effects import Effects
from agents.runtime.replies import refuse, reply
from streams.envelope import Envelope, derived_id
from streams.events.inventory import (
    AdjustRequested,
    ReleaseRequested,
    ReserveRequested,
    StockChanged,
)
from streams.events.saga import StockRejected, StockReleased, StockReserved

SOURCE = "agents.inventory"


class Announcer:
    """Sends saga results, public stock changes, pushes and answers for inventory decisions."""

    source = SOURCE

    def __init__(self, effects: Effects) -> None:
        self._effects = effects

    async def reservation(
        self, envelope: Envelope, command: ReserveRequested, record: dict[str, Any]
    ) -> None:
        """``saga.stock_reserved`` (+ the stock change) or ``saga.stock_rejected``."""
        rid, at = command.reservation_id, datetime.fromisoformat(record["at"])
        if record["status"] == "rejected":
            rejected = StockRejected(
                order_id=command.order_id,
                product_id=command.product_id,
                reservation_id=rid,
                reason=record["reason"],
                available=record["available"],
            )
            await self._saga(envelope, rejected, derived_id("reservation", rid, "rejected"), at)
            return
        reserved = StockReserved(
            order_id=command.order_id,
            product_id=command.product_id,
            reservation_id=rid,
            quantity=record["quantity"],
        )
        await self._saga(envelope, reserved, derived_id("reservation", rid, "reserved"), at)
        change = StockChanged(
            product_id=command.product_id,
            current_stock=record["stock"],
            change=-record["quantity"],
            reason="reserved",
            order_id=command.order_id,
            sequence=record.get("sequence"),
        )
        await self._stock(envelope, change, derived_id("reservation", rid, "stock.reserved"), at)

    async def release(
        self, envelope: Envelope, command: ReleaseRequested, record: dict[str, Any]
    ) -> None:
        """``saga.stock_released`` (quantity 0 for nothing to release) + the stock change."""
        rid, at = command.reservation_id, datetime.fromisoformat(record["releasedAt"])
        released = StockReleased(
            order_id=command.order_id,
            product_id=command.product_id,
            reservation_id=rid,
            quantity=record["released"],
        )
        await self._saga(envelope, released, derived_id("reservation", rid, "released"), at)
        if record["released"]:
            change = StockChanged(
                product_id=command.product_id,
                current_stock=record["releasedStock"],
                change=record["released"],
                reason="released",
                order_id=command.order_id,
                sequence=record.get("releasedSequence"),
            )
            event_id = derived_id("reservation", rid, "stock.released")
            await self._stock(envelope, change, event_id, at)

    async def adjustment(
        self, envelope: Envelope, command: AdjustRequested, decision: dict[str, Any]
    ) -> None:
        """The stock change (if any) and, when someone waits, the answer."""
        if decision["outcome"] == "rejected":
            if command.reply_to:
                await refuse(
                    self._effects, envelope, decision, reply_to=command.reply_to, source=SOURCE
                )
            return
        if command.quantity_change or decision["reason"] == "created":
            change = StockChanged(
                product_id=command.product_id,
                current_stock=decision["stock"],
                change=command.quantity_change,
                reason=decision["reason"],
                sequence=decision.get("sequence"),
            )
            at = datetime.fromisoformat(decision["at"])
            await self._stock(envelope, change, derived_id(envelope.id, "stock.changed"), at)
        if command.reply_to:
            await reply(
                self._effects, envelope, reply_to=command.reply_to, source=SOURCE,
                outcome="accepted",
                result={"productId": command.product_id, "currentStock": decision["stock"]},
            )

    async def _saga(
        self,
        envelope: Envelope,
        payload: StockReserved | StockRejected | StockReleased,
        event_id: str,
        at: datetime,
    ) -> None:
        # Keyed by order id: the saga sees every result of one order, in order.
        await caused.emit(
            self._effects, payload, cause=envelope, source=SOURCE, event_id=event_id, at=at
        )

    async def _stock(
        self, envelope: Envelope, change: StockChanged, event_id: str, at: datetime
    ) -> None:
        event = await caused.emit(
            self._effects, change, cause=envelope, source=SOURCE, event_id=event_id, at=at
        )
        await self._effects.push(f"product:{change.product_id}", event)
