"""/v1/users: profiles, profile changes and roles (changes go through the users agent)."""

from __future__ import annotations

import orjson
from aiohttp import web

from gateway import keys
from gateway.audit import recording
from gateway.docs.openapi import operation
from gateway.http import fields
from gateway.http.validation import parse_body
from gateway.identity import usercommands
from gateway.identity.auth import authenticate, require_scope
from gateway.identity.keys import PROFILES, USERS
from gateway.identity.schemas import ProfilePatchBody, RolesBody, UserOut
from streams.errors import FieldError, InvalidInput, NotFound
from streams.events.audit import RolesChanged
from streams.events.users import Address, ProfileUpdateRequested, RolesChangeRequested

routes = web.RouteTableDef()
USER_ANSWER = fields.answer(UserOut, fields.sparse(UserOut))


@routes.get("/v1/users/me")
@operation(
    "The caller's profile",
    tags=("users",),
    auth=True,
    parameters=(fields.parameter(UserOut),),
    responses={
        200: ("Profile (trimmed by ?fields=)", USER_ANSWER),
        401: ("Not signed in", None),
        # A valid token can outlive its account (NOT_FOUND).
        404: ("This account no longer exists", None),
    },
)
async def me(request: web.Request) -> web.Response:
    """Return the signed-in user's profile."""
    principal = authenticate(request, request.app[keys.TOKENS])
    names = fields.requested(request, UserOut)
    profiles = request.app[PROFILES]
    body = profiles.cached(principal.user_id) or await profiles.body(principal.user_id)
    if body is None:
        raise NotFound("this account no longer exists")
    return _profile(body, names)


@routes.patch("/v1/users/me")
@operation(
    "Change the caller's name, address and/or stock alert threshold",
    tags=("users",),
    auth=True,
    body=ProfilePatchBody,
    responses={
        200: ("Updated profile", UserOut),
        401: ("Not signed in", None),
        422: ("Invalid fields, or nothing to change", None),
        503: ("No worker answered in time; nothing was applied (Retry-After)", None),
    },
)
async def update_me(request: web.Request) -> web.Response:
    """Hand the change to the users agent and answer with the profile it produced."""
    principal = authenticate(request, request.app[keys.TOKENS])
    body = await parse_body(request, ProfilePatchBody)
    sent = body.model_fields_set
    if not sent or ("name" in sent and body.name is None):
        field = "name" if sent else "body"
        raise InvalidInput(
            "nothing to change",
            errors=[FieldError(field, "send a name, an address or a stockLowThreshold")],
        )
    address = None
    if body.address is not None:
        address = Address.model_validate(body.address.model_dump())
    profile = await usercommands.apply(
        request,
        ProfileUpdateRequested(
            user_id=principal.user_id,
            name=body.name,
            address=address,
            clear_address="address" in sent and body.address is None,
            stock_low_threshold=body.stock_low_threshold,
            clear_stock_low_threshold=(
                "stock_low_threshold" in sent and body.stock_low_threshold is None
            ),
            **usercommands.common_fields(request, actor_id=principal.user_id),
        ),
    )
    profile.pop("version", None)
    return web.json_response(profile)


@routes.get("/v1/users/{id}")
@operation(
    "A user's profile (self or admin)",
    tags=("users",),
    auth=True,
    parameters=(fields.parameter(UserOut),),
    responses={
        200: ("Profile (trimmed by ?fields=)", USER_ANSWER),
        401: ("Not signed in", None),
        404: ("No such user, or not yours to see", None),
    },
)
async def by_id(request: web.Request) -> web.Response:
    """Return a profile; others' profiles answer 404 so existence does not leak."""
    principal = authenticate(request, request.app[keys.TOKENS])
    user_id = request.match_info["id"]
    if user_id != principal.user_id and not principal.is_admin:
        raise NotFound("no such user")
    names = fields.requested(request, UserOut)
    body = await request.app[PROFILES].body(user_id)
    if body is None:
        raise NotFound("no such user")
    return _profile(body, names)


def _profile(body: bytes, names: frozenset[str] | None) -> web.Response:
    # The profile cache holds serialized bodies: parsed again only to trim them.
    if names is not None:
        body = orjson.dumps(fields.select(orjson.loads(body), names))
    return web.Response(body=body, content_type="application/json")


@routes.put("/v1/users/{id}/roles")
@operation(
    "Replace a user's roles (admin); the user's older tokens are revoked",
    tags=("users",),
    auth=True,
    body=RolesBody,
    responses={
        200: ("Updated profile", UserOut),
        401: ("Not signed in", None),
        403: ("Not an admin", None),
        404: ("No such user", None),
        422: ("Invalid fields", None),
        503: ("No worker answered in time; nothing was applied (Retry-After)", None),
    },
)
async def set_roles(request: web.Request) -> web.Response:
    """Apply the new roles, then revoke the user's tokens so new roles take effect now."""
    principal = require_scope(request, "users:admin")
    body = await parse_body(request, RolesBody)
    user_id = request.match_info["id"]
    previous = await request.app[USERS].by_id(user_id)
    if previous is None:
        raise NotFound("no such user")
    profile = await usercommands.apply(
        request,
        RolesChangeRequested(
            user_id=user_id,
            roles=sorted(set(body.roles)),
            **usercommands.common_fields(request, actor_id=principal.user_id),
        ),
    )
    profile.pop("version", None)
    # Refresh tokens stay valid: a refresh reads the roles anew and issues a fitting token.
    await request.app[keys.REVOCATIONS].revoke(user_id)
    await recording.record(
        request,
        RolesChanged(
            **recording.request_context(request, principal.user_id),
            subject_id=user_id,
            roles=sorted(set(body.roles)),
            previous_roles=[r for r in previous.roles if r in ("buyer", "seller", "admin")],
        ),
    )
    return web.json_response(profile)
