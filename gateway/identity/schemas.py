"""Request and response bodies of the auth and users endpoints."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from gateway.http.responses import Out
from gateway.http.validation import Body

# Deliberately permissive (RFC 5322 is wider still); delivery proves the address.
EMAIL_PATTERN = r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$"
_EMAIL = re.compile(EMAIL_PATTERN)


def normalise_email(email: str) -> str:
    """The uniqueness key of an email: NFKC, trimmed, lower-cased."""
    return unicodedata.normalize("NFKC", email).strip().lower()


def _email_shape(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError("not a valid email address")
    return value


# Checked by our own pattern (its message, not pydantic's); published with it and the format.
Email = Annotated[
    str,
    Field(max_length=254, examples=["ada@example.com"],
          json_schema_extra={"format": "email", "pattern": EMAIL_PATTERN}),
    AfterValidator(_email_shape),
]


class RegisterBody(Body):
    """POST /v1/auth/register."""

    email: Email
    password: str = Field(min_length=8, max_length=128, examples=["correct horse battery"])
    name: str = Field(min_length=1, max_length=100, examples=["Ada Lovelace"])
    role: Literal["buyer", "seller"] = "buyer"


class LoginBody(Body):
    """POST /v1/auth/login."""

    email: Email
    password: str = Field(min_length=1, max_length=128)


class AddressBody(Body):
    """A postal address."""

    line1: str = Field(min_length=1, max_length=200)
    line2: str | None = Field(default=None, max_length=200)
    city: str = Field(min_length=1, max_length=100)
    region: str | None = Field(default=None, max_length=100)
    postal_code: str = Field(min_length=1, max_length=20)
    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2, e.g. 'DE'.")


class UserOut(Out):
    """A user's profile."""

    user_id: str
    email: str
    name: str
    roles: list[str]
    address: AddressBody | None = None
    stock_low_threshold: int | None = Field(
        default=None, description="Present when the seller set their own stock alert threshold."
    )
    created_at: str | None = None


class TokenOut(Out):
    """Tokens issued by login and refresh."""

    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105  (a scheme name, not a secret)
    expires_in: int


class RefreshBody(Body):
    """POST /v1/auth/refresh and /v1/auth/logout."""

    refresh_token: str = Field(min_length=1, max_length=200)


class ResetBody(Body):
    """POST /v1/auth/password/reset."""

    email: Email


class ResetConfirmBody(Body):
    """POST /v1/auth/password/reset/confirm."""

    token: str = Field(min_length=1, max_length=200)
    new_password: str = Field(min_length=8, max_length=128)


class ProfilePatchBody(Body):
    """PATCH /v1/users/me: only the fields sent change; ``address: null`` removes it."""

    # Published as a string: a name cannot be removed (``null`` is answered 422).
    name: Annotated[str, Field(min_length=1, max_length=100)] | SkipJsonSchema[None] = None
    address: AddressBody | None = None
    # A seller is told when a product's stock falls below it; 0 never, null the default.
    stock_low_threshold: Annotated[int, Field(ge=0, le=1_000_000)] | None = None

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})


class RolesBody(Body):
    """PUT /v1/users/{id}/roles: the complete new set."""

    roles: list[Literal["buyer", "seller", "admin"]] = Field(min_length=1, max_length=3)
