"""Wiring of webhooks on a Faust app: the router agents, the deliveries agent, the dispatcher."""

from __future__ import annotations

from typing import Any

import faust

from agents.runtime.declare import Agents, guarded_agent, source_table, source_topic
from agents.runtime.effects import Effects
from agents.webhooks.catalogue import FOLLOWED
from agents.webhooks.deliveries import DeliveriesDecider
from agents.webhooks.dispatcher import Dispatcher
from agents.webhooks.router import WebhookRouter
from config import Settings

TABLE = "webhook-deliveries"


def install(app: faust.App, settings: Settings, effects: Effects) -> Agents:
    """Declare the table, the agents and the dispatcher's timer on ``app``."""
    table = source_table(
        app, settings, TABLE, topic="webhooks",
        help="delivery:{id} -> a delivery's state and body; endpoint:{webhookId} -> its "
        "failed attempts in a row",
    )
    dispatcher = Dispatcher(table, effects, settings)
    decider = DeliveriesDecider(
        table, effects, disable_after=settings.webhook_disable_after, on_change=dispatcher.note,
        on_delete=dispatcher.forget,
    )
    router = WebhookRouter(effects)

    async def webhook_deliveries() -> None:
        await dispatcher.tick()

    async def close_dispatcher(sender: Any, **_: Any) -> None:
        await dispatcher.aclose()

    async def reindex(sender: Any, *_: Any, **__: Any) -> None:
        # Revoked: the deliveries of partitions gone elsewhere are not this worker's to make.
        # Rebalance complete: sent once the table has recovered the partitions assigned.
        dispatcher.reassigned()

    # Faust's decorators are untyped; register through Any rather than silence each line.
    faust_app: Any = app
    faust_app.timer(interval=settings.webhook_tick)(webhook_deliveries)
    faust_app.on_before_shutdown.connect(close_dispatcher)
    faust_app.on_partitions_revoked.connect(reindex)
    faust_app.on_rebalance_complete.connect(reindex)
    agents: Agents = {
        "webhooks": guarded_agent(
            app, name="webhooks", topic=source_topic(app, settings, "webhooks"),
            effects=effects, handle=decider.handle,
        ),
    }
    # One router per followed topic: each reads at its own pace, beside (never in front
    # of) that topic's other agents.
    for topic in FOLLOWED:
        agents[f"webhooks-{topic}"] = guarded_agent(
            app, name=f"webhooks-{topic}", topic=source_topic(app, settings, topic),
            effects=effects, handle=router.handle,
        )
    return agents
