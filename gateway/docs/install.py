"""The published descriptions as the gateway installs them: their routes and the live page."""

from __future__ import annotations

from gateway.docs import pages
from gateway.domain import Domain

DOMAIN = Domain("docs", setup=pages.setup)
