"""/v1/users: profiles."""

from __future__ import annotations

from aiohttp import web

from gateway import keys
from gateway.auth import authenticate
from gateway.openapi import operation
from gateway.routes.schemas import UserOut
from streams.errors import NotFound

routes = web.RouteTableDef()


@routes.get("/v1/users/me")
@operation(
    "The caller's profile",
    tags=("users",),
    auth=True,
    responses={200: ("Profile", UserOut), 401: ("Not signed in", None)},
)
async def me(request: web.Request) -> web.Response:
    """Return the signed-in user's profile."""
    principal = authenticate(request, request.app[keys.TOKENS])
    user = await request.app[keys.USERS].by_id(principal.user_id)
    if user is None:
        raise NotFound("this account no longer exists")
    return web.json_response(user.to_json())


@routes.get("/v1/users/{id}")
@operation(
    "A user's profile (self or admin)",
    tags=("users",),
    auth=True,
    responses={
        200: ("Profile", UserOut),
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
    user = await request.app[keys.USERS].by_id(user_id)
    if user is None:
        raise NotFound("no such user")
    return web.json_response(user.to_json())
