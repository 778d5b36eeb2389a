"""Account events: the registration command (internal) and the public user events."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from streams.commands import REGISTRATIONS, USERS
from streams.registry import Command, Payload, Timestamp, event

Role = Literal["buyer", "seller", "admin"]


@event(
    "registration.requested",
    topic="registrations",
    key="normalised email",
    summary="A client asked to register; the registrations agent decides if the email is free.",
    answers=REGISTRATIONS,
)
class RegistrationRequested(Command):
    """Internal command: carries the password hash, so it never leaves the internal topic."""

    user_id: str = Field(description="Id the account gets if the registration is accepted.")
    email: str = Field(description="Email as the client typed it (trimmed).")
    email_normalized: str = Field(description="Lower-cased, trimmed email: the uniqueness key.")
    name: str
    roles: list[Role]
    password_hash: str = Field(description="Argon2id hash; never copied to a public topic.")
    deadline: Timestamp = Field(description="After this instant a worker drops the command.")
    reply_to: str = Field(description="Id of the gateway instance waiting for the answer.")

    def record_key(self) -> str:
        """Keyed by the normalised email, so one address's registrations are decided in order."""
        return self.email_normalized


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
    created_at: Timestamp


class Address(Payload):
    """A postal address as the user typed it."""

    line1: str
    line2: str | None = None
    city: str
    region: str | None = None
    postal_code: str
    country: str = Field(description="ISO 3166-1 alpha-2 country code.")


class UserCommand(Command):
    """Fields every command on ``user-commands`` carries."""

    user_id: str = Field(description="The account the command changes (the record key).")
    actor_id: str | None = Field(default=None, description="Who asked; None for the system.")
    expected_version: int | None = Field(
        default=None, description="Apply only if the account is still at this version."
    )
    deadline: Timestamp = Field(description="After this instant a worker drops the command.")
    reply_to: str = Field(description="Id of the gateway instance waiting for the answer.")


@event(
    "user.profile_update_requested",
    topic="user-commands",
    key="userId",
    summary="A user asked to change their name and/or address.",
    answers=USERS,
)
class ProfileUpdateRequested(UserCommand):
    """Internal command: only the fields present change; ``clearAddress`` removes it."""

    name: str | None = None
    address: Address | None = None
    clear_address: bool = False
    stock_low_threshold: int | None = Field(default=None, ge=0)
    clear_stock_low_threshold: bool = Field(
        default=False, description="Back to the default stock alert threshold."
    )


@event(
    "user.roles_change_requested",
    topic="user-commands",
    key="userId",
    summary="An admin asked to replace a user's roles.",
    answers=USERS,
)
class RolesChangeRequested(UserCommand):
    """Internal command: the complete new set of roles."""

    roles: list[Role]


PasswordChangeReason = Literal["reset", "rehash", "change"]


@event(
    "user.password_change_requested",
    topic="user-commands",
    key="userId",
    summary="A new password hash for a user (reset, rehash on login, or change).",
    answers=USERS,
)
class PasswordChangeRequested(UserCommand):
    """Internal command: carries the new Argon2id hash, so it never leaves the internal topic."""

    password_hash: str
    reason: PasswordChangeReason


class UserChanged(Payload):
    """Fields every public change event of an account carries."""

    user_id: str
    version: int = Field(description="The account's version after this change.")
    actor_id: str | None = None
    changed_at: Timestamp


@event(
    "user.profile_updated",
    topic="users",
    key="userId",
    summary="A user's name or address changed.",
)
class UserProfileUpdated(UserChanged):
    """Public event: the new values of the changed fields."""

    changed: list[Literal["name", "address", "stockLowThreshold"]]
    name: str
    address: Address | None = None
    stock_low_threshold: int | None = Field(
        default=None, description="The seller's own stock alert threshold; None: the default."
    )


@event(
    "user.roles_changed",
    topic="users",
    key="userId",
    summary="A user's roles were replaced; tokens issued before now are revoked.",
)
class UserRolesChanged(UserChanged):
    """Public event: old and new roles."""

    roles: list[Role]
    previous_roles: list[Role]


@event(
    "user.password_changed",
    topic="users",
    key="userId",
    summary="A user's credentials changed. Carries no credentials.",
)
class UserCredentialsChanged(UserChanged):
    """Public event: only why, never what."""

    reason: PasswordChangeReason
