"""Wiring of the audit agent on a Faust app."""

from __future__ import annotations

import faust

from agents.audit.decider import AuditDecider
from agents.runtime.declare import Agents, guarded_agent, source_topic
from agents.runtime.effects import Effects
from config import Settings


def install(app: faust.App, settings: Settings, effects: Effects) -> Agents:
    """Declare the audit topic and agent on ``app``; returns it by name."""
    decider = AuditDecider(effects)
    agent = guarded_agent(
        app,
        name="audit",
        topic=source_topic(app, settings, "audit"),
        effects=effects,
        handle=decider.handle,
    )
    return {"audit": agent}
