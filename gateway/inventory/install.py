"""Stock as the gateway installs it: its route (the inventory agent keeps the levels)."""

from __future__ import annotations

from gateway.domain import Domain
from gateway.inventory import routes

DOMAIN = Domain("inventory", routes=(routes.routes,))
