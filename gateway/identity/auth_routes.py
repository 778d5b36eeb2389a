"""/v1/auth: registration (through the registrations agent) and login."""

from __future__ import annotations

import uuid

from aiohttp import web

from gateway import keys
from gateway.audit import recording
from gateway.docs.openapi import operation
from gateway.features.gates import REGISTRATIONS_CLOSED, require_flag
from gateway.http.validation import parse_body
from gateway.identity import usercommands
from gateway.identity.keys import USERS
from gateway.identity.passwords import hash_password, needs_rehash, verify_password
from gateway.identity.refresh_routes import token_pair
from gateway.identity.schemas import LoginBody, RegisterBody, TokenOut, UserOut, normalise_email
from gateway.runtime import commands
from gateway.runtime.commands import new_deadline
from stores.users import Credentials
from streams.errors import Unauthenticated
from streams.events.audit import LoginFailed, LoginSucceeded
from streams.events.users import PasswordChangeRequested, RegistrationRequested

routes = web.RouteTableDef()


@routes.post("/v1/auth/register")
@operation(
    "Create an account",
    tags=("auth",),
    body=RegisterBody,
    responses={
        201: ("Account created", UserOut),
        400: ("Malformed body", None),
        403: ("Registrations are closed (REGISTRATIONS_CLOSED, flag registrations.open)", None),
        409: ("Email already registered (EMAIL_TAKEN)", None),
        422: ("Invalid fields", None),
        503: ("No worker answered in time; nothing was applied (Retry-After)", None),
    },
)
async def register(request: web.Request) -> web.Response:
    """Hand the registration to the registrations agent and wait for its decision."""
    require_flag(request, "registrations.open", None, code=REGISTRATIONS_CLOSED,
                 detail="registrations are closed for now; try again later")
    body = await parse_body(request, RegisterBody)
    user = await commands.ask(
        request,
        RegistrationRequested(
            user_id=uuid.uuid4().hex,
            email=body.email,
            email_normalized=normalise_email(body.email),
            name=body.name,
            roles=[body.role],
            password_hash=await hash_password(body.password),
            deadline=new_deadline(request.app[keys.SETTINGS]),
            reply_to=request.app[keys.COMMANDS].instance_id,
        ),
    )
    return web.json_response(user, status=201, headers={"Location": f"/v1/users/{user['userId']}"})


@routes.post("/v1/auth/login")
@operation(
    "Exchange email and password for an access and a refresh token",
    tags=("auth",),
    body=LoginBody,
    responses={
        200: ("Signed in", TokenOut),
        401: ("Wrong email or password (INVALID_CREDENTIALS)", None),
        422: ("Invalid fields", None),
    },
)
async def login(request: web.Request) -> web.Response:
    """Verify the password against the users read model and open a session."""
    body = await parse_body(request, LoginBody)
    email_key = normalise_email(body.email)
    credentials = await request.app[USERS].credentials(email_key)
    ok = await verify_password(credentials.password_hash if credentials else None, body.password)
    if credentials is None or not ok:
        await recording.record(
            request,
            LoginFailed(
                **recording.request_context(request, None),
                email_masked=recording.mask_email(email_key),
                email_fingerprint=recording.email_fingerprint(request, email_key),
            ),
        )
        # One message for unknown email and wrong password: no account enumeration.
        raise Unauthenticated("wrong email or password", code="INVALID_CREDENTIALS")
    out, session_id = await token_pair(request, credentials.user_id, credentials.roles)
    await recording.record(
        request,
        LoginSucceeded(
            **recording.request_context(request, credentials.user_id),
            subject_id=credentials.user_id,
            session_id=session_id,
        ),
    )
    if needs_rehash(credentials.password_hash):
        await _rehash(request, credentials, body.password)
    return web.json_response(out.model_dump(by_alias=True))


async def _rehash(request: web.Request, credentials: Credentials, password: str) -> None:
    # The hash was made with older parameters; only now is the password at hand to redo it.
    # Fire and forget: expectedVersion makes a late copy lose against any newer change.
    await commands.publish(
        request,
        PasswordChangeRequested(
            user_id=credentials.user_id,
            password_hash=await hash_password(password),
            reason="rehash",
            expected_version=credentials.version,
            **usercommands.common_fields(request, actor_id=credentials.user_id),
        ),
    )
