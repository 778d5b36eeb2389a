"""State of real-time push."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from gateway.push.hub import PushHub

PUSH_HUB: web.AppKey[PushHub] = web.AppKey("push_hub")
