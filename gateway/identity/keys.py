"""State of the identity domain: accounts, profiles and credentials."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from gateway.identity.profiles import ProfileCache
    from gateway.identity.refresh_tokens import Sessions
    from gateway.identity.reset_tokens import ResetTokens
    from stores.users import UserRepository

USERS: web.AppKey[UserRepository] = web.AppKey("users")
PROFILES: web.AppKey[ProfileCache] = web.AppKey("profiles")
SESSIONS: web.AppKey[Sessions] = web.AppKey("sessions")
RESET_TOKENS: web.AppKey[ResetTokens] = web.AppKey("reset_tokens")
