"""Wiring of the notifications agent on a Faust app: its decisions table and its sink."""

from __future__ import annotations

import faust

from agents.notifications.decider import NotificationsDecider
from agents.notifications.sinks import sink_for
from agents.runtime.declare import KEYS_IN_FLIGHT, Agents, guarded_agent, source_table, source_topic
from agents.runtime.effects import Effects
from config import Settings

TABLE = "notifications-decisions"


def install(app: faust.App, settings: Settings, effects: Effects) -> Agents:
    """Declare the outbox topic, decisions table and agent on ``app``; returns it by name."""
    # Keys are message/command/user ids, not the record key; Faust keeps each entry in the
    # partition of the record that wrote it, which is the user's partition either way.
    table = source_table(
        app, settings, TABLE, topic="outbox",
        help="message:{id} -> delivery decision; command:{id} -> read/read-all/delete outcome; "
        "user:{id} -> unread count and address",
    )
    decider = NotificationsDecider(table, effects, sink_for(settings))
    agent = guarded_agent(
        app,
        name="notifications",
        topic=source_topic(app, settings, "outbox"),
        effects=effects,
        handle=decider.handle,
        pass_offset=True,  # tells a record delivered again from a later copy of its message
        keys_in_flight=KEYS_IN_FLIGHT,
    )
    return {"notifications": agent}
