"""/v1/auth/password/reset: single-use reset tokens delivered through the outbox."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from gateway import keys
from gateway.audit import recording
from gateway.docs.openapi import operation
from gateway.http.validation import parse_body
from gateway.identity import usercommands
from gateway.identity.keys import RESET_TOKENS, SESSIONS, USERS
from gateway.identity.passwords import hash_password
from gateway.identity.schemas import ResetBody, ResetConfirmBody, normalise_email
from gateway.runtime import commands
from streams.errors import InvalidResetToken, MercatoError
from streams.events.audit import PasswordResetCompleted, PasswordResetRequested
from streams.events.notifications import MessageRequested
from streams.events.users import PasswordChangeRequested

routes = web.RouteTableDef()


@routes.post("/v1/auth/password/reset")
@operation(
    "Ask for a password-reset email",
    tags=("auth",),
    body=ResetBody,
    responses={
        202: ("Accepted, whether or not the account exists", None),
        422: ("Invalid fields", None),
    },
)
async def request_reset(request: web.Request) -> web.Response:
    """Answer 202 at once; the lookup and delivery run afterwards, so timing reveals nothing."""
    body = await parse_body(request, ResetBody)
    email_key = normalise_email(body.email)
    context = recording.request_context(request, None)
    request.app[keys.BACKGROUND].spawn(
        _issue(request, email_key, context), name=f"password-reset-{request[keys.REQUEST_ID]}"
    )
    return web.Response(status=202)


async def _issue(request: web.Request, email_key: str, context: dict[str, Any]) -> None:
    app = request.app
    credentials = await app[USERS].credentials(email_key)
    user_id = credentials.user_id if credentials is not None else None
    await recording.record(
        request,
        PasswordResetRequested(
            **context,
            subject_id=user_id,
            email_masked=recording.mask_email(email_key),
            email_fingerprint=recording.email_fingerprint(request, email_key),
        ),
    )
    if user_id is None:
        return
    token = await app[RESET_TOKENS].issue(user_id)
    await commands.publish(
        request,
        MessageRequested(
            message_id=uuid.uuid4().hex,
            user_id=user_id,
            to=email_key,
            template="password_reset",
            params={"token": token, "expiresInMinutes": app[RESET_TOKENS].ttl // 60},
        ),
    )


@routes.post("/v1/auth/password/reset/confirm")
@operation(
    "Set a new password with a reset token; every session is revoked",
    tags=("auth",),
    body=ResetConfirmBody,
    responses={
        204: ("Password changed; all sessions revoked", None),
        400: ("Unknown, used or expired token (INVALID_RESET_TOKEN)", None),
        422: ("Invalid fields", None),
        503: ("No worker answered; the token stays valid (Retry-After)", None),
    },
)
async def confirm_reset(request: web.Request) -> web.Response:
    """Consume the token, change the password through the users agent, revoke sessions."""
    body = await parse_body(request, ResetConfirmBody)
    resets = request.app[RESET_TOKENS]
    consumed = await resets.consume(body.token)
    if consumed is None:
        raise InvalidResetToken("the reset token is unknown, used or expired; ask for a new one")
    user_id, remaining_ms = consumed
    try:
        await usercommands.apply(
            request,
            PasswordChangeRequested(
                user_id=user_id,
                password_hash=await hash_password(body.new_password),
                reason="reset",
                **usercommands.common_fields(request, actor_id=user_id),
            ),
        )
    except MercatoError:
        # Nothing was applied: give the token back for the time it had left.
        await resets.restore(body.token, user_id, remaining_ms)
        raise
    revoked = await request.app[SESSIONS].close_all(user_id)
    await request.app[keys.REVOCATIONS].revoke(user_id)
    await recording.record(
        request,
        PasswordResetCompleted(
            **recording.request_context(request, user_id),
            subject_id=user_id,
            sessions_revoked=revoked,
        ),
    )
    return web.Response(status=204)
