"""/v1/admin/features (admins set flags) and /v1/config/features (what applies to me)."""

from __future__ import annotations

from typing import get_args

from aiohttp import web
from pydantic import Field, RootModel

from gateway import keys
from gateway.docs.openapi import operation
from gateway.features.setting import set_flag
from gateway.http.responses import Out
from gateway.http.validation import Body, parse_body
from gateway.identity.auth import Principal, authenticate, bearer_token, require_scope
from streams.errors import FieldError, InvalidInput
from streams.events.config import FlagRule
from streams.events.users import Role
from streams.flags.rules import NAME_PATTERN, Flag, valid_name

routes = web.RouteTableDef()
SCOPE = "features:admin"
INVALID_FLAG_NAME = "INVALID_FLAG_NAME"
NOT_ADMIN = "Signed in, but not an admin (INSUFFICIENT_SCOPE)"


class FeatureBody(Body):
    """PUT /v1/admin/features/{name}: the flag's whole new state."""

    enabled: bool
    rollout_percent: int | None = Field(
        default=None, ge=0, le=100, description="On for this share of users, stable per user."
    )
    # FlagRule's fields, but validated as a request body (strict, unknown fields refused)
    # where the event tolerates what a newer producer adds.
    roles: list[Role] | None = Field(
        default=None, min_length=1, max_length=len(get_args(Role)),
        description="On only for users holding one of these roles.",
    )


class FeatureOut(Out):
    """One flag as set (or its default when ``isSet`` is false)."""

    name: str
    enabled: bool
    rollout_percent: int | None
    roles: list[str] | None
    is_set: bool
    updated_by: str | None
    updated_at: str | None


class FeaturesOut(Out):
    """Every built-in flag and every flag set, by name."""

    data: list[FeatureOut]


class CallerFeaturesOut(RootModel[dict[str, bool]]):
    """Each flag's answer for the caller: ``{name: on}``."""


def _out(flag: Flag, *, is_set: bool) -> dict[str, object]:
    return FeatureOut(
        name=flag.name, enabled=flag.enabled, rollout_percent=flag.rollout_percent,
        roles=None if flag.roles is None else sorted(flag.roles), is_set=is_set,
        updated_by=flag.updated_by, updated_at=flag.updated_at,
    ).model_dump(by_alias=True)


def _admin(request: web.Request) -> Principal:
    return require_scope(request, SCOPE)


@routes.get("/v1/admin/features")
@operation(
    "Every feature flag as set (admin)",
    tags=("features",),
    auth=True,
    responses={200: ("The flags", FeaturesOut), 403: (NOT_ADMIN, None)},
)
async def list_features(request: web.Request) -> web.Response:
    """The built-in flags (with their defaults if unset) and every flag set on the topic."""
    _admin(request)
    book = request.app[keys.FLAGS]
    flags = book.flags()
    return web.json_response(
        {"data": [_out(flag, is_set=book.is_set(name)) for name, flag in flags.items()]}
    )


@routes.put("/v1/admin/features/{name}")
@operation(
    "Set a feature flag (admin); every gateway and worker applies it within seconds",
    tags=("features",),
    auth=True,
    body=FeatureBody,
    responses={
        200: ("The flag's new state", FeatureOut),
        403: (NOT_ADMIN, None),
        422: ("Invalid fields, or a flag name that is neither built in nor dotted lower-case "
              f"words (INVALID_FLAG_NAME, {NAME_PATTERN})", None),
        503: ("The broker did not take the change in time (Retry-After)", None),
    },
)
async def put_feature(request: web.Request) -> web.Response:
    """Write the flag's state through the ``config`` topic, audited."""
    admin = _admin(request)
    name = request.match_info["name"]
    if not valid_name(name):
        raise InvalidInput(
            "no such flag: use a built-in name or dotted lower-case words",
            errors=[FieldError("name", f"must be a built-in flag or match {NAME_PATTERN}")],
            code=INVALID_FLAG_NAME,
        )
    body = await parse_body(request, FeatureBody)
    rule = FlagRule(enabled=body.enabled, rollout_percent=body.rollout_percent, roles=body.roles)
    flag = await set_flag(request, admin, name, rule)
    return web.json_response(_out(flag, is_set=True))


@routes.get("/v1/config/features")
@operation(
    "The feature flags as they apply to the caller (anonymous without a token)",
    tags=("features",),
    responses={
        200: ("Each flag's answer for the caller", CallerFeaturesOut),
        401: ("A token was sent but is not valid", None),
    },
)
async def my_features(request: web.Request) -> web.Response:
    """``{name: on}`` for every flag, evaluated for the caller's id and roles."""
    caller = None
    if bearer_token(request) is not None:
        caller = authenticate(request, request.app[keys.TOKENS])
    book = request.app[keys.FLAGS]
    return web.json_response({name: flag.on_for(caller) for name, flag in book.flags().items()})
