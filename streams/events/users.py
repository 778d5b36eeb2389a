"""Account events: the registration command (internal) and the public user events."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from streams.registry import Payload, event

Role = Literal["buyer", "seller", "admin"]


@event(
    "registration.requested",
    topic="registrations",
    key="normalised email",
    summary="A client asked to register; the registrations agent decides if the email is free.",
)
class RegistrationRequested(Payload):
    """Internal command: carries the password hash, so it never leaves the internal topic."""

    user_id: str = Field(description="Id the account gets if the registration is accepted.")
    email: str = Field(description="Email as the client typed it (trimmed).")
    email_normalized: str = Field(description="Lower-cased, trimmed email: the uniqueness key.")
    name: str
    roles: list[Role]
    password_hash: str = Field(description="Argon2id hash; never copied to a public topic.")
    deadline: datetime = Field(description="After this instant a worker drops the command.")
    reply_to: str = Field(description="Id of the gateway instance waiting for the answer.")


@event(
    "user.registered",
    topic="users",
    key="userId",
    summary="A new account exists. Carries no credentials.",
)
class UserRegistered(Payload):
    """Public event: a new account was created."""

    user_id: str
    email: str
    name: str
    roles: list[Role]
    created_at: datetime
