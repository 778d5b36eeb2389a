"""Wiring of the payments agent on a Faust app: its table, the provider and its calls."""

from __future__ import annotations

import faust

from agents.payments.calls import ResilientCalls
from agents.payments.decider import PaymentsDecider
from agents.payments.provider import SimulatedProvider
from agents.runtime.declare import KEYS_IN_FLIGHT, Agents, guarded_agent, source_table, source_topic
from agents.runtime.effects import Effects
from config import Settings

TABLE = "payments-by-order"


def install(app: faust.App, settings: Settings, effects: Effects) -> Agents:
    """Declare the payment-commands topic, the payments table and the agent on ``app``."""
    table = source_table(
        app, settings, TABLE, topic="payment-commands",
        help="order id -> {charges, refunds}: settled outcomes by idempotency key",
    )
    # The simulator hangs well past the call timeout on tok_timeout, like a stuck provider.
    provider = SimulatedProvider(hang=settings.payment_call_timeout * 10)
    decider = PaymentsDecider(table, effects, provider, ResilientCalls.from_settings(settings))

    agent = guarded_agent(
        app,
        name="payments",
        topic=source_topic(app, settings, "payment-commands"),
        effects=effects,
        handle=decider.handle,
        keys_in_flight=KEYS_IN_FLIGHT,
    )
    return {"payments": agent}
