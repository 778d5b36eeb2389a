"""Audit records: who did what security-relevant thing, from where (``audit`` topic).

The gateway records these as they happen (they describe requests, not business
state); the audit agent appends them to MongoDB. No record carries a secret:
emails of failed attempts are masked and fingerprinted, sessions are named by a
digest of their family id.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from streams.events.users import Role
from streams.registry import Payload, event

KEY = "actorId, or 'anonymous'"


class AuditRecord(Payload):
    """What every audit record carries about the request that caused it."""

    actor_id: str | None = Field(description="The authenticated caller; None if anonymous.")
    subject_id: str | None = Field(default=None, description="The account acted upon.")
    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None

    def record_key(self) -> str:
        """Keyed by the actor; anonymous attempts share one key."""
        return self.actor_id or "anonymous"


class EmailAttempt(AuditRecord):
    """An attempt naming an email that may not exist: never the email itself."""

    email_masked: str = Field(description="e.g. 'a***@example.com'.")
    email_fingerprint: str = Field(description="Keyed digest of the normalised email.")


@event("auth.login_succeeded", topic="audit", key=KEY, summary="A user signed in.")
class LoginSucceeded(AuditRecord):
    """A new session (refresh-token family) was opened."""

    session_id: str


@event("auth.login_failed", topic="audit", key=KEY, summary="A sign-in attempt failed.")
class LoginFailed(EmailAttempt):
    """Unknown email and wrong password are one reason, as the client sees it."""

    reason: Literal["invalid_credentials"] = "invalid_credentials"


@event("auth.logged_out", topic="audit", key=KEY, summary="A session was closed by its user.")
class LoggedOut(AuditRecord):
    """The session's refresh-token family was revoked."""

    session_id: str


@event(
    "auth.refresh_reused",
    topic="audit",
    key=KEY,
    summary="An already-rotated refresh token was presented; its whole session was revoked.",
)
class RefreshReused(AuditRecord):
    """Likely theft of a refresh token."""

    session_id: str


@event(
    "auth.roles_changed",
    topic="audit",
    key=KEY,
    summary="An admin replaced a user's roles; the user's older tokens were revoked.",
)
class RolesChanged(AuditRecord):
    """Who gave whom which roles."""

    roles: list[Role]
    previous_roles: list[Role]


@event(
    "auth.password_reset_requested",
    topic="audit",
    key=KEY,
    summary="Someone asked for a password reset (the account may not exist).",
)
class PasswordResetRequested(EmailAttempt):
    """``subjectId`` is set only when the account exists."""


@event(
    "auth.password_reset_completed",
    topic="audit",
    key=KEY,
    summary="A password was reset with a reset token; every session of the user was revoked.",
)
class PasswordResetCompleted(AuditRecord):
    """The reset token was consumed."""

    sessions_revoked: int
