"""Push as the gateway installs it: the hub's lifetime, its routes, who follows orders and
presence (which needs Redis, so ``setup_push`` alone leaves it out)."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from gateway.domain import Domain
from gateway.push import presence_routes, setup_push
from gateway.push.channels import OrderAccess
from gateway.push.presence import presence_ctx


def domain(*, order_access: Callable[[web.Application], OrderAccess]) -> Domain:
    """Push as a gateway domain; ``order_access(app)`` decides who may follow order:{id}."""
    return Domain(
        "push", setup=lambda app: setup_push(app, order_access=order_access(app)),
        # After the hub's context (added by setup): presence listens to the hub.
        contexts=(presence_ctx,),
        routes=(presence_routes.routes,),
    )
