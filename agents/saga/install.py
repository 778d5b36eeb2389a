"""Wiring of the order saga on a Faust app: its table, orchestrator and the timers."""

from __future__ import annotations

from typing import Any

import faust

from agents.runtime.declare import KEYS_IN_FLIGHT, Agents, guarded_agent, source_table, source_topic
from agents.runtime.effects import Effects
from agents.saga.deadlines import DeadlineWatch
from agents.saga.decider import OrderSaga
from agents.saga.retention import RetentionWatch
from agents.saga.steps import Deadlines
from config import Settings

TABLE = "order-sagas"


def install(app: faust.App, settings: Settings, effects: Effects) -> Agents:
    """Declare the saga table, the orchestrator agent and its deadline and expiry timer."""
    table = source_table(
        app, settings, TABLE, topic="order-saga",
        help="order id -> saga state (status, lines, reservations, payment, history, ...)",
    )
    deadlines = Deadlines.from_settings(settings)
    watch = DeadlineWatch(table, effects)
    expiry = RetentionWatch(table, effects, deadlines.retention)

    def noted(state: dict[str, Any]) -> None:
        watch.note(state)
        expiry.note(state)

    saga = OrderSaga(table, effects, deadlines, on_commit=noted)

    async def order_deadlines() -> None:
        await watch.tick()
        await expiry.tick()

    # Faust's decorators are untyped; register through Any rather than silence each line.
    faust_app: Any = app
    faust_app.timer(interval=settings.saga_tick)(order_deadlines)
    agent = guarded_agent(
        app, name="orders", topic=source_topic(app, settings, "order-saga"),
        effects=effects, handle=saga.handle, keys_in_flight=KEYS_IN_FLIGHT,
    )
    return {"orders": agent}
