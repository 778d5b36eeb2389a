"""State of the audit domain."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from stores.audit import AuditRepository

AUDIT_LOGS: web.AppKey[AuditRepository] = web.AppKey("audit_logs")
