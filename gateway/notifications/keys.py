"""State of the notifications domain."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from stores.notifications import NotificationRepository

NOTIFICATIONS: web.AppKey[NotificationRepository] = web.AppKey("notifications")
