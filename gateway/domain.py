"""A gateway domain declared once: its wiring, its resources and its routes.

``gateway.app`` installs one list of these; a domain package exports its own
(``gateway/<domain>/install.py``) next to the keys it owns (``keys.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable

from aiohttp import web

CleanupContext = Callable[[web.Application], AsyncIterator[None]]


@dataclasses.dataclass(frozen=True, slots=True)
class Domain:
    """What one area of the gateway adds to the application."""

    name: str
    # Wiring without I/O (state objects, middlewares, hooks), run by ``create_app``.
    setup: Callable[[web.Application], None] | None = None
    # Opened in the order of the domains, after the earlier domains' contexts.
    contexts: tuple[CleanupContext, ...] = ()
    # Registered in the order of the domains: the order of /openapi.json's paths.
    routes: tuple[web.RouteTableDef, ...] = ()

    def install(self, app: web.Application) -> None:
        """Add this domain to ``app``."""
        if self.setup is not None:
            self.setup(app)
        app.cleanup_ctx.extend(self.contexts)
        for table in self.routes:
            app.router.add_routes(table)
