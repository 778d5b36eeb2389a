"""The docs domain as the gateway installs it: its wiring, resources and routes."""

from __future__ import annotations

from gateway.docs import pages
from gateway.domain import Domain

DOMAIN = Domain("docs", setup=pages.setup)
