"""Wiring of the inventory agent on a Faust app: the stock table and the agent."""

from __future__ import annotations

import faust

from agents.inventory.decider import InventoryDecider
from agents.runtime.declare import KEYS_IN_FLIGHT, Agents, guarded_agent, source_table, source_topic
from agents.runtime.effects import Effects
from config import Settings

TABLE = "inventory-stock"


def install(app: faust.App, settings: Settings, effects: Effects) -> Agents:
    """Declare the inventory-commands topic, the stock table and the agent on ``app``."""
    table = source_table(
        app, settings, TABLE, topic="inventory-commands",
        help="product id -> {stock, created, reservations, applied}: the stock's source of truth",
    )
    decider = InventoryDecider(table, effects, retention=settings.saga_retention)

    agent = guarded_agent(
        app,
        name="inventory",
        topic=source_topic(app, settings, "inventory-commands"),
        effects=effects,
        handle=decider.handle,
        keys_in_flight=KEYS_IN_FLIGHT,
    )
    return {"inventory": agent}
