"""Recording audit events from the gateway: what a request did, who asked, from where.

Records are queued on the producer without waiting for the broker's ack (the
response must not wait for the audit trail); a failed delivery is logged
(``CommandBus.publish``).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from aiohttp import web

from gateway import keys
from gateway.http.addresses import client_address
from gateway.runtime import commands
from streams.events.audit import AuditRecord

USER_AGENT_MAX = 256


def client_ip(request: web.Request) -> str | None:
    """The client address; the last X-Forwarded-For entry only behind a trusted proxy."""
    return client_address(request, trust_proxy=request.app[keys.SETTINGS].trust_proxy)


def request_context(request: web.Request, actor_id: str | None) -> dict[str, Any]:
    """The common fields of an audit record for ``request``."""
    agent = request.headers.get("User-Agent")
    return {
        "actor_id": actor_id,
        "ip": client_ip(request),
        "user_agent": agent[:USER_AGENT_MAX] if agent else None,
        "request_id": request.get(keys.REQUEST_ID),
    }


def mask_email(email: str) -> str:
    """``ada@example.com`` -> ``a***@example.com``: enough to recognise, not to read."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


def email_fingerprint(request: web.Request, email_normalized: str) -> str:
    """A keyed digest of an email: groups attempts on one address, cannot be dictionary-reversed."""
    secret = request.app[keys.SETTINGS].jwt_secret.encode()
    return hmac.new(secret, email_normalized.encode(), hashlib.sha256).hexdigest()[:24]


async def record(request: web.Request, payload: AuditRecord) -> None:
    """Queue ``payload`` on the ``audit`` topic, keyed by its actor."""
    await commands.publish(request, payload)
