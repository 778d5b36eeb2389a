"""The gateway installs every route table it has, once, through its one list of domains."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from aiohttp import web

import gateway
from config import Settings
from gateway.app import DOMAINS, create_app

SETTINGS = Settings(data_dir=Path("unused"), jwt_secret="domains-test-secret-domains-test-0000")


def _route_tables() -> dict[str, web.RouteTableDef]:
    tables = {}
    for info in pkgutil.walk_packages(gateway.__path__, prefix="gateway."):
        module = importlib.import_module(info.name)
        table = getattr(module, "routes", None)
        if isinstance(table, web.RouteTableDef):
            tables[info.name] = table
    return tables


def test_every_route_table_belongs_to_exactly_one_domain() -> None:
    # A routes module left out of its domain's install.py would serve nothing, silently.
    tables = _route_tables()
    assert len(tables) >= 19
    installed = [id(table) for domain in DOMAINS for table in domain.routes]
    for name, table in tables.items():
        assert installed.count(id(table)) == 1, f"{name}.routes is not installed exactly once"


def test_domain_names_are_unique() -> None:
    names = [domain.name for domain in DOMAINS]
    assert len(names) == len(set(names))


def test_contexts_open_after_what_they_depend_on() -> None:
    names = [getattr(ctx, "func", ctx).__name__ for ctx in create_app(SETTINGS).cleanup_ctx]
    # The backends first; background work drains before the producer closes (reverse order).
    assert names[:4] == ["mongo_ctx", "redis_ctx", "kafka_ctx", "background_ctx"]
    # The push hub reads the revocations when it starts.
    assert names.index("revocations_ctx") < names.index("push_ctx")
