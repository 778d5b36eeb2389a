"""Wiring of the groups agent on a Faust app."""

from __future__ import annotations

import faust

from agents.groups.decider import GroupsDecider
from agents.runtime.declare import Agents, guarded_agent, source_topic
from agents.runtime.effects import Effects
from config import Settings


def install(app: faust.App, settings: Settings, effects: Effects) -> Agents:
    """Declare the groups topic and agent on ``app``; returns it by name."""
    decider = GroupsDecider(effects, max_members=settings.group_max_members,
                            per_owner=settings.groups_per_owner)
    agent = guarded_agent(
        app,
        name="groups",
        topic=source_topic(app, settings, "groups"),
        effects=effects,
        handle=decider.handle,
    )
    return {"groups": agent}
