"""The inventory domain as the gateway installs it: its wiring, resources and routes."""

from __future__ import annotations

from gateway.domain import Domain
from gateway.inventory import routes

DOMAIN = Domain("inventory", routes=(routes.routes,))
