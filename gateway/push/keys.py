"""State of real-time push."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from gateway.push.hub import PushHub
    from gateway.push.presence import Presence

PUSH_HUB: web.AppKey[PushHub] = web.AppKey("push_hub")
# Installed by the gateway's push domain (gateway.push.install), not by setup_push alone.
PRESENCE: web.AppKey[Presence] = web.AppKey("presence")
