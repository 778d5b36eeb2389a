"""Wiring of the dead-letters agent on a Faust app."""

from __future__ import annotations

import logging
from typing import Any

import faust

from agents.deadletters.decider import AGENT, DeadLetterDecider
from agents.runtime.declare import Agents, source_topic
from agents.runtime.effects import Effects
from config import Settings

log = logging.getLogger(__name__)


def install(app: faust.App, settings: Settings, effects: Effects) -> Agents:
    """Declare the agent projecting ``dlq`` into the dead letters read model."""
    decider = DeadLetterDecider(effects)

    async def consume(stream: Any) -> None:
        # Not ``guarded_agent``: its give-up path writes to ``dlq``, this agent's own input.
        # The decider handles every record without raising (see agents.deadletters.decider),
        # and a record is acked once its letter is stored.
        async for event in stream.events():
            message = event.message
            outcome = await decider.handle(message.value, topic=message.topic,
                                           partition=message.partition, offset=message.offset)
            log.debug("%s: %s", AGENT, outcome)

    consume.__name__ = consume.__qualname__ = AGENT
    return {AGENT: app.agent(source_topic(app, settings, "dlq"), name=AGENT)(consume)}
