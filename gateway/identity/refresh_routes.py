"""/v1/auth/refresh and /v1/auth/logout: rotating refresh tokens (``refresh_tokens``)."""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

from gateway import keys
from gateway.audit import recording
from gateway.docs.openapi import operation
from gateway.http.validation import parse_body
from gateway.identity.keys import SESSIONS, USERS
from gateway.identity.schemas import RefreshBody, TokenOut
from streams.errors import Unauthenticated
from streams.events.audit import LoggedOut, RefreshReused

routes = web.RouteTableDef()


async def token_pair(
    request: web.Request, user_id: str, roles: Iterable[str]
) -> tuple[TokenOut, str]:
    """A new session for ``user_id``: the token pair and the session's public id."""
    refresh, session_id = await request.app[SESSIONS].open(user_id)
    tokens = request.app[keys.TOKENS]
    out = TokenOut(
        access_token=tokens.issue_access(user_id, roles),
        refresh_token=refresh,
        expires_in=tokens.access_ttl,
    )
    return out, session_id


@routes.post("/v1/auth/refresh")
@operation(
    "Exchange a refresh token for a new pair (the old refresh token stops working)",
    tags=("auth",),
    body=RefreshBody,
    responses={
        200: ("New tokens", TokenOut),
        401: (
            "Unknown, expired or revoked refresh token; a reused one revokes its session; "
            "a session past its maximum age ends (INVALID_REFRESH_TOKEN, "
            "REFRESH_TOKEN_REUSED, SESSION_EXPIRED)",
            None,
        ),
        422: ("Invalid fields", None),
    },
)
async def refresh(request: web.Request) -> web.Response:
    """Rotate the refresh token; roles come from the account as it is now."""
    body = await parse_body(request, RefreshBody)
    sessions = request.app[SESSIONS]
    rotation = await sessions.rotate(body.refresh_token)
    if rotation.status == "reused" and rotation.user_id and rotation.session_id:
        await recording.record(
            request,
            RefreshReused(
                **recording.request_context(request, None),
                subject_id=rotation.user_id,
                session_id=rotation.session_id,
            ),
        )
        raise Unauthenticated(
            "this refresh token was already used; the session is revoked, sign in again",
            code="REFRESH_TOKEN_REUSED",
        )
    if rotation.status == "expired":
        days = sessions.max_age // 86_400
        raise Unauthenticated(
            f"this session reached its maximum age ({days} days); sign in again",
            code="SESSION_EXPIRED",
        )
    if rotation.status != "rotated" or rotation.user_id is None or rotation.token is None:
        raise Unauthenticated("the refresh token is not valid", code="INVALID_REFRESH_TOKEN")
    # Roles are read now, not copied into the session, so a role change applies on refresh.
    user = await request.app[USERS].by_id(rotation.user_id)
    if user is None:
        await sessions.close(rotation.token)
        raise Unauthenticated("the refresh token is not valid", code="INVALID_REFRESH_TOKEN")
    tokens = request.app[keys.TOKENS]
    out = TokenOut(
        access_token=tokens.issue_access(user.user_id, user.roles),
        refresh_token=rotation.token,
        expires_in=tokens.access_ttl,
    )
    return web.json_response(out.model_dump(by_alias=True))


@routes.post("/v1/auth/logout")
@operation(
    "Revoke the session of a refresh token",
    tags=("auth",),
    body=RefreshBody,
    responses={204: ("Signed out (also when the token was already invalid)", None)},
)
async def logout(request: web.Request) -> web.Response:
    """Revoke the token's family; answers 204 either way, so it reveals nothing."""
    body = await parse_body(request, RefreshBody)
    closed = await request.app[SESSIONS].close(body.refresh_token)
    if closed is not None:
        user_id, session_id = closed
        await recording.record(
            request,
            LoggedOut(
                **recording.request_context(request, user_id),
                subject_id=user_id,
                session_id=session_id,
            ),
        )
    return web.Response(status=204)
