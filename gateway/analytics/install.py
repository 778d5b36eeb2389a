"""The analytics domain as the gateway installs it: its wiring, resources and routes."""

from __future__ import annotations

from gateway.analytics import event_routes, report_routes
from gateway.domain import Domain

DOMAIN = Domain("analytics", routes=(event_routes.routes, report_routes.routes))
