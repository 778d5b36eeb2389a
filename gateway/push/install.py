"""Push as the gateway installs it: the hub's lifetime, its routes, who follows orders and
presence (which needs Redis, so ``setup_push`` alone leaves it out)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from gateway import keys
from gateway.domain import Domain
from gateway.push import presence_routes, setup_push
from gateway.push.channels import OrderAccess
from gateway.push.keys import PUSH_HUB
from gateway.push.presence import presence_ctx
from gateway.runtime.gc_policy import GcLimits, GcPolicy, governed


async def gc_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx (after the hub's): the gateway's garbage collection policy, whose churn
    is push connections closing (they hold nearly all of its long-lived objects)."""
    settings, counters = app[keys.SETTINGS], app[PUSH_HUB].counters
    policy = (GcPolicy(GcLimits(settings.gc_collect_after_closed), now=time.monotonic())
              if settings.gc_freeze else None)

    def connections() -> tuple[int, int]:
        return counters.connections, counters.connections_total - counters.connections

    async with governed(policy, connections, app[keys.METRICS].registry):
        yield


def domain(*, order_access: Callable[[web.Application], OrderAccess]) -> Domain:
    """Push as a gateway domain; ``order_access(app)`` decides who may follow order:{id}."""
    return Domain(
        "push", setup=lambda app: setup_push(app, order_access=order_access(app)),
        # After the hub's context (added by setup): presence listens to the hub.
        contexts=(presence_ctx, gc_ctx),
        routes=(presence_routes.routes,),
    )
