"""Wiring of the identity agents on a Faust app: registrations and user commands."""

from __future__ import annotations

from typing import Any

import faust

from agents.identity.registrations import RegistrationDecider
from agents.identity.users import UsersDecider
from agents.runtime.declare import Agents, guarded_agent, source_table, source_topic
from agents.runtime.effects import Effects
from config import Settings

REGISTRATIONS_TABLE = "registrations-by-email"
USERS_TABLE = "users-decisions"


def install(app: faust.App, settings: Settings, effects: Effects) -> Agents:
    """Declare the registrations and user-commands tables and agents on ``app``."""
    return {
        "registrations": _registrations(app, settings, effects),
        "users": _users(app, settings, effects),
    }


def _registrations(app: faust.App, settings: Settings, effects: Effects) -> Any:
    """Declare the registrations topic, table and agent on ``app``; returns the agent."""
    # Values are plain JSON objects (the app's default serializer); no model class needed.
    table = source_table(
        app, settings, REGISTRATIONS_TABLE, topic="registrations",
        help="normalised email -> {userId, commandId, createdAt} of the account that owns it",
    )
    decider = RegistrationDecider(table, effects)
    return guarded_agent(
        app,
        name="registrations",
        topic=source_topic(app, settings, "registrations"),
        effects=effects,
        handle=decider.handle,
    )


def _users(app: faust.App, settings: Settings, effects: Effects) -> Any:
    """Declare the user-commands topic, decisions table and agent on ``app``."""
    table = source_table(
        app, settings, USERS_TABLE, topic="user-commands",
        help="user id -> {version, decisions: {commandId: outcome/version/at}} (recent)",
    )
    decider = UsersDecider(table, effects)
    return guarded_agent(
        app,
        name="users",
        topic=source_topic(app, settings, "user-commands"),
        effects=effects,
        handle=decider.handle,
    )
