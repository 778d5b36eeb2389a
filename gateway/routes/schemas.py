"""Request and response bodies of the auth and users endpoints."""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from gateway.validation import Body

# Deliberately permissive (RFC 5322 is wider still); delivery proves the address.
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")


def normalise_email(email: str) -> str:
    """The uniqueness key of an email: NFKC, trimmed, lower-cased."""
    return unicodedata.normalize("NFKC", email).strip().lower()


class RegisterBody(Body):
    """POST /v1/auth/register."""

    email: str = Field(max_length=254, examples=["ada@example.com"])
    password: str = Field(min_length=8, max_length=128, examples=["correct horse battery"])
    name: str = Field(min_length=1, max_length=100, examples=["Ada Lovelace"])
    role: Literal["buyer", "seller"] = "buyer"

    @field_validator("email")
    @classmethod
    def _email_shape(cls, value: str) -> str:
        if not _EMAIL.match(value):
            raise ValueError("not a valid email address")
        return value


class LoginBody(Body):
    """POST /v1/auth/login."""

    email: str = Field(max_length=254)
    password: str = Field(min_length=1, max_length=128)


class Out(BaseModel):
    """Base of response bodies: camelCase on the wire."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


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

    email: str = Field(max_length=254)


class ResetConfirmBody(Body):
    """POST /v1/auth/password/reset/confirm."""

    token: str = Field(min_length=1, max_length=200)
    new_password: str = Field(min_length=8, max_length=128)


class ProfilePatchBody(Body):
    """PATCH /v1/users/me: only the fields sent change; ``address: null`` removes it."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    address: AddressBody | None = None


class RolesBody(Body):
    """PUT /v1/users/{id}/roles: the complete new set."""

    roles: list[Literal["buyer", "seller", "admin"]] = Field(min_length=1, max_length=3)
