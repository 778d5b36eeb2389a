"""Analytics as the gateway installs it: the events route, the dashboard and reports routes."""

from __future__ import annotations

from gateway.analytics import event_routes, report_routes
from gateway.domain import Domain

DOMAIN = Domain("analytics", routes=(event_routes.routes, report_routes.routes))
