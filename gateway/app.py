"""``create_app(settings)``: installs the gateway's domains; performs no I/O."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from aiohttp import web

from config import Settings
from gateway import keys
from gateway.analytics import install as analytics
from gateway.audit import install as audit
from gateway.catalog import install as catalog
from gateway.deadletters import install as deadletters
from gateway.docs import install as docs
from gateway.domain import Domain
from gateway.features import install as features
from gateway.files import install as files
from gateway.groups import install as groups
from gateway.http import install as http
from gateway.identity import install as identity
from gateway.inventory import install as inventory
from gateway.notifications import install as notifications
from gateway.ops import install as ops
from gateway.ops.metrics import Metrics
from gateway.orders import install as orders
from gateway.orders.ordering import order_access
from gateway.push import install as push
from gateway.runtime import install as runtime
from gateway.webhooks import install as webhooks

MAX_BODY = 1024 * 1024

# Installed in this order: their contexts start in it (and stop in reverse), their
# routes register in it, so it is also the order of /openapi.json's paths.
DOMAINS: Sequence[Domain] = (
    runtime.DOMAIN,
    # Flags load before anything serves: the edge's maintenance check reads them.
    features.DOMAIN,
    http.DOMAIN,
    # Buyers and sellers follow order:{id}; the hook reads the orders read model.
    push.domain(order_access=order_access),
    identity.ACCOUNTS,
    inventory.DOMAIN,
    orders.DOMAIN,
    catalog.DOMAIN,
    identity.CREDENTIALS,
    notifications.DOMAIN,
    webhooks.DOMAIN,
    audit.DOMAIN,
    groups.DOMAIN,
    files.DOMAIN,
    analytics.DOMAIN,
    deadletters.DOMAIN,
    ops.DOMAIN,
    docs.DOMAIN,
)


def create_app(settings: Settings, *, instance_id: str | None = None) -> web.Application:
    """The gateway application for ``settings``."""
    app = web.Application(client_max_size=MAX_BODY)
    app[keys.SETTINGS] = settings
    app[keys.INSTANCE_ID] = instance_id or uuid.uuid4().hex[:12]
    # One registry per application: the edge, the limiter and the domains all add to it.
    app[keys.METRICS] = Metrics()
    for domain in DOMAINS:
        domain.install(app)
    return app
