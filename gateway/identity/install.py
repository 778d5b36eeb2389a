"""Identity as the gateway installs it: tokens, accounts and credentials, in two route groups."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from gateway import keys
from gateway.domain import Domain
from gateway.identity import (
    auth_routes,
    jwks_routes,
    refresh_routes,
    reset_routes,
    user_routes,
)
from gateway.identity.auth import TokenService
from gateway.identity.keys import PROFILES, RESET_TOKENS, SESSIONS, USERS
from gateway.identity.profiles import ProfileCache
from gateway.identity.refresh_tokens import Sessions
from gateway.identity.reset_tokens import ResetTokens
from stores.users import UserRepository


def _tokens(app: web.Application) -> None:
    app[keys.TOKENS] = TokenService(app[keys.SETTINGS])


async def identity_ctx(app: web.Application) -> AsyncIterator[None]:
    """Users and cached profiles (MongoDB), refresh-token families and reset tokens (Redis)."""
    settings = app[keys.SETTINGS]
    redis = app[keys.REDIS]
    prefix = f"{settings.app_id}:"
    app[USERS] = UserRepository(app[keys.MONGO_DB])
    app[PROFILES] = ProfileCache(app[USERS])
    app[SESSIONS] = Sessions(redis, prefix=prefix, max_age=settings.session_max_age)
    app[RESET_TOKENS] = ResetTokens(redis, prefix=prefix)
    yield


ACCOUNTS = Domain(
    "identity",
    setup=_tokens,
    contexts=(identity_ctx,),
    routes=(auth_routes.routes, jwks_routes.routes, user_routes.routes),
)
# The same domain's credential routes; a second entry only because /openapi.json lists
# them after the catalog's and the document's path order is part of the published API.
CREDENTIALS = Domain("identity-credentials", routes=(refresh_routes.routes, reset_routes.routes))
