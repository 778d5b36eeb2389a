"""State of the operators' probes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from gateway.ops.backups import Backups
    from gateway.ops.health import Readiness

READINESS: web.AppKey[Readiness] = web.AppKey("readiness")
BACKUPS: web.AppKey[Backups] = web.AppKey("backups")
