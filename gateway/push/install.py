"""Push as the gateway installs it: the hub's lifetime, its routes and who follows orders."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from gateway.domain import Domain
from gateway.push import setup_push
from gateway.push.channels import OrderAccess


def domain(*, order_access: Callable[[web.Application], OrderAccess]) -> Domain:
    """Push as a gateway domain; ``order_access(app)`` decides who may follow order:{id}."""
    return Domain(
        "push", setup=lambda app: setup_push(app, order_access=order_access(app))
    )
