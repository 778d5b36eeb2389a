"""Which command endpoints have a same-X-Request-ID concurrency test, declared by the tests.

A test that sends concurrent requests sharing one X-Request-ID to a command endpoint says
so with ``@covers("POST /v1/things")``, in whatever module it lives (a domain's own), and
the guard in ``tests/integration/test_shared_request_ids.py`` compares :func:`covered`
with the endpoints that wait for an agent: a new domain adds its test, not a line to a
shared list, and an endpoint nobody covers still fails the guard.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_ROOT = Path(__file__).resolve().parents[2]
_TESTS = _ROOT / "tests"
# How a test module is recognised as declaring coverage without importing every module.
_MARK = "@covers("
_COVERED: dict[str, list[str]] = {}


def covers(*endpoints: str) -> Callable[[F], F]:
    """Declare that the decorated test covers ``endpoints`` (``"METHOD /path"``, as in OpenAPI)."""

    def declare(test: F) -> F:
        for endpoint in endpoints:
            _COVERED.setdefault(endpoint, []).append(f"{test.__module__}.{test.__qualname__}")
        return test

    return declare


def covered() -> dict[str, list[str]]:
    """Every endpoint some test module under tests/ declares, with the tests covering it.

    The modules are imported here rather than read from pytest's collection, so the guard
    gives the same answer when a run selects only some modules.
    """
    for path in sorted(_TESTS.rglob("test_*.py")):
        if _MARK in path.read_text(encoding="utf-8"):
            importlib.import_module(".".join(path.relative_to(_ROOT).with_suffix("").parts))
    return {endpoint: list(tests) for endpoint, tests in _COVERED.items()}
