"""Domain errors: one root, stable codes, no HTTP knowledge.

Stores, agents and the gateway's handlers raise these; the gateway maps each
class to an HTTP status in exactly one place (``gateway.http.problems``).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True, slots=True)
class FieldError:
    """One invalid input field: a dotted path and what is wrong with it."""

    field: str
    message: str


class MercatoError(Exception):
    """Root of every domain error; ``code`` is stable and documented."""

    code = "ERROR"
    title = "Request failed"

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code


class InvalidInput(MercatoError):
    """The input is well-formed but breaks the rules (field errors attached)."""

    code = "VALIDATION_ERROR"
    title = "Invalid input"

    def __init__(
        self, detail: str, *, errors: list[FieldError] | None = None, code: str | None = None
    ) -> None:
        super().__init__(detail, code=code)
        self.errors = errors or []


class MalformedRequest(MercatoError):
    """The request cannot be parsed at all (not JSON, wrong content type, ...)."""

    code = "MALFORMED_REQUEST"
    title = "Malformed request"


class UnsupportedMediaType(MercatoError):
    """A body sent with a media type the operation does not read (e.g. not JSON)."""

    code = "UNSUPPORTED_MEDIA_TYPE"
    title = "Unsupported media type"


class Unauthenticated(MercatoError):
    """No valid credentials."""

    code = "UNAUTHENTICATED"
    title = "Authentication required"


class Forbidden(MercatoError):
    """Valid credentials, not allowed."""

    code = "FORBIDDEN"
    title = "Forbidden"


class NotFound(MercatoError):
    """The thing does not exist, or the caller may not know it does."""

    code = "NOT_FOUND"
    title = "Not found"


class Conflict(MercatoError):
    """The request conflicts with the current state (e.g. EMAIL_TAKEN)."""

    code = "CONFLICT"
    title = "Conflict"


class Unavailable(MercatoError):
    """A dependency did not answer in time; retrying later is safe."""

    code = "SERVICE_UNAVAILABLE"
    title = "Service unavailable"

    def __init__(self, detail: str, *, retry_after: int = 2, code: str | None = None) -> None:
        super().__init__(detail, code=code)
        self.retry_after = retry_after


class PreconditionFailed(MercatoError):
    """A conditional request whose precondition (e.g. ``If-Match``) no longer holds."""

    code = "PRECONDITION_FAILED"
    title = "Precondition failed"


class PreconditionRequired(MercatoError):
    """A change that must be conditional (``If-Match``) arrived unconditionally."""

    code = "PRECONDITION_REQUIRED"
    title = "Precondition required"


class InvalidCursor(MalformedRequest):
    """A pagination cursor that this API did not issue (or that was altered)."""

    code = "INVALID_CURSOR"
    title = "Invalid cursor"


class InvalidResetToken(MalformedRequest):
    """A password-reset token that is unknown, already used or expired."""

    code = "INVALID_RESET_TOKEN"
    title = "Invalid reset token"


class PayloadTooLarge(MercatoError):
    """An upload over the size limit (PAYLOAD_TOO_LARGE) or the quota (QUOTA_EXCEEDED)."""

    code = "PAYLOAD_TOO_LARGE"
    title = "Payload too large"


class RangeNotSatisfiable(MercatoError):
    """A ``Range`` that selects no byte of the representation; ``size`` goes in Content-Range."""

    code = "RANGE_NOT_SATISFIABLE"
    title = "Range not satisfiable"

    def __init__(self, detail: str, *, size: int) -> None:
        super().__init__(detail)
        self.size = size
