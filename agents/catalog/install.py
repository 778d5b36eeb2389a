"""Wiring of the catalog agents on a Faust app: products and reviews, stock, stock alerts."""

from __future__ import annotations

from typing import Any

import faust

from agents.catalog.decider import CatalogDecider
from agents.catalog.reviews import ReviewDecider
from agents.catalog.stock import StockProjector
from agents.catalog.stock_alerts import StockAlerts
from agents.runtime.declare import KEYS_IN_FLIGHT, Agents, guarded_agent, source_table, source_topic
from agents.runtime.effects import Effects
from config import Settings

TABLE = "catalog-products"
REVIEWS_TABLE = "catalog-reviews"


def install(app: faust.App, settings: Settings, effects: Effects) -> Agents:
    """Declare the catalog's tables and agents on ``app``; returns them by name."""
    return {
        "catalog": _catalog(app, settings, effects),
        "catalog-stock": _stock(app, settings, effects),
        "stock-alerts": _stock_alerts(app, settings, effects),
    }


def _catalog(app: faust.App, settings: Settings, effects: Effects) -> Any:
    """Declare the product-commands topic, catalog tables and agent on ``app``."""
    table = source_table(
        app, settings, TABLE, topic="product-commands",
        help="product id -> {product: facts incl. version, decisions: {commandId: ...}} (recent)",
    )
    reviews_table = source_table(
        app, settings, REVIEWS_TABLE, topic="product-commands",
        help="product id -> {reviewers: {buyerId: reviewId}, sum, count, decisions}",
    )
    decider = CatalogDecider(table, effects, ReviewDecider(reviews_table, table, effects))

    return guarded_agent(
        app,
        name="catalog",
        topic=source_topic(app, settings, "product-commands"),
        effects=effects,
        handle=decider.handle,
    )


def _stock(app: faust.App, settings: Settings, effects: Effects) -> Any:
    """Declare the agent projecting the public ``inventory`` topic onto products."""
    projector = StockProjector(effects)

    return guarded_agent(
        app,
        name="catalog-stock",
        topic=source_topic(app, settings, "inventory"),
        effects=effects,
        handle=projector.handle,
        pass_offset=True,
        # Keyed by product id: many products' stock rows share one bulk write.
        keys_in_flight=KEYS_IN_FLIGHT,
    )


def _stock_alerts(app: faust.App, settings: Settings, effects: Effects) -> Any:
    """Declare the agent reading ``inventory`` for stock alerts."""
    alerts = StockAlerts(effects, default_threshold=settings.stock_low_threshold)
    return guarded_agent(
        app,
        name="stock-alerts",
        topic=source_topic(app, settings, "inventory"),
        effects=effects,
        handle=alerts.handle,
    )
