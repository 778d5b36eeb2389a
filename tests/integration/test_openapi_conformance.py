"""Schemathesis against the live ``/openapi.json``: every answer must be one the document declares.

The real stack (a worker and a gateway process) is seeded with a buyer, a seller with a
product, and an admin; every generated request is then sent once as each of them, and
each answer is held to the document: its status is declared, its content type and body
match the declared ones, declared headers are present and valid, and nothing is a 500.

The streaming endpoints (/v1/ws, /v1/events) are upgrades, not request/response
operations, and are not in the document. One operation is left out of the admin's run
(see ``EXCLUDED``); every other one runs for every role, destructive ones included:
schemathesis feeds ids it has seen in answers back into paths, so it archives and deletes
what it created or found, and those answers are held to the document like any other.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest
import schemathesis
import schemathesis.engine
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events
from schemathesis.schemas import BaseSchema

from config import Settings
from mercato._procs import free_port
from mercato.embedded import Endpoints
from streams.admin import ensure_topics
from tests.conftest import make_settings
from tests.support.files import eventually, form, png
from tests.support.gateways import running_gateway
from tests.support.processes import child_env, running_worker

pytestmark = pytest.mark.integration
PASSWORD = "correct horse battery"
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
)
# Bounded so the tier stays well inside its budget on a busy 2-core machine: each example is
# sent three times (one per role), and the coverage phase adds its boundary cases.
MAX_EXAMPLES = 15
# One thread: CPython 3.11 before 3.11.8 can fail compiling in two threads at once
# ("AST constructor recursion depth mismatch", gh-106905), which hypothesis does.
WORKERS = 1
# Role changes revoke the target's tokens, and the admin's own id is in the answers the run
# sees: an admin who demotes itself would spend the rest of its run as a signed-out buyer.
EXCLUDED = {"admin": [("PUT", "/v1/users/{id}/roles")]}


@dataclasses.dataclass(frozen=True, slots=True)
class Seeded:
    """The live gateway and the Authorization header of each role."""

    base: str
    roles: dict[str, dict[str, str]]


@pytest.fixture(scope="module")
async def env(stack: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """An isolated world with rate limits off (the tier would spend the buckets at once)."""
    settings = dataclasses.replace(
        make_settings(stack, tmp_path_factory.mktemp("conformance")),
        rate_limit_enabled=False,
        worker_session_timeout=20.0,
    )
    await ensure_topics(settings)
    return settings


@pytest.fixture(scope="module")
async def live(env: Settings) -> AsyncIterator[Seeded]:
    """A worker and a gateway process, seeded with a buyer, a seller's product and an admin."""
    log = env.data_dir / "worker.log"
    async with running_worker(env, log):
        await eventually(lambda: _is(b"Worker ready" in log.read_bytes()),
                         within=60, what="the worker's tables")
        async with running_gateway(env, free_port(), env.data_dir / "gateway.log") as base:
            yield Seeded(base, await _seed(env, base))


async def _is(condition: bool) -> bool:
    return condition


async def _seed(env: Settings, base: str) -> dict[str, dict[str, str]]:
    """Accounts, and data in every read model, so answers carry real bodies to check."""
    async with aiohttp.ClientSession(base) as http:
        buyer = await _account(http, "buyer")
        seller = await _account(http, "seller")
        async with http.post("/v1/files", headers=seller,
                             data=form(png(32, 32), name="cover.png")) as uploaded:
            assert uploaded.status == 201, await uploaded.text()
            file_id = (await uploaded.json())["fileId"]
        async with http.post("/v1/products", headers=seller, json={
            "name": "Conformance book", "category": "ebooks", "price": "10.00",
            "currency": "USD", "stock": 5, "fileIds": [file_id]}) as created:
            assert created.status == 201, await created.text()
            product_id = (await created.json())["productId"]
        await _completed_order(http, buyer, product_id)
        async with http.post(f"/v1/products/{product_id}/reviews", headers=buyer,
                             json={"rating": 5, "comment": "conforms"}) as reviewed:
            assert reviewed.status == 201, await reviewed.text()
        email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mercato", "admin", "create", "--email", email,
            "--password", PASSWORD, "--name", "Root",
            env=child_env(env), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        _, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        admin = await _login(http, email)
    return {"buyer": buyer, "seller": seller, "admin": admin}


async def _completed_order(
    http: aiohttp.ClientSession, buyer: dict[str, str], product_id: str
) -> None:
    async def placed() -> str | None:
        # The product reaches the inventory asynchronously: until then it is unavailable.
        async with http.post("/v1/orders", headers={**buyer, "Idempotency-Key": uuid.uuid4().hex},
                             json={"items": [{"productId": product_id, "quantity": 1}],
                                   "paymentMethod": "tok_visa"}) as response:
            return str((await response.json())["orderId"]) if response.status == 202 else None

    order_id = await eventually(placed, within=30, what="the product to be orderable")

    async def completed() -> bool:
        async with http.get(f"/v1/orders/{order_id}", headers=buyer) as response:
            return response.status == 200 and (await response.json())["status"] == "completed"

    await eventually(completed, within=60, what=f"order {order_id} to complete")


async def _account(http: aiohttp.ClientSession, role: str) -> dict[str, str]:
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    body = {"email": email, "password": PASSWORD, "name": role.title(), "role": role}

    async def register() -> int | None:
        async with http.post("/v1/auth/register", json=body) as response:
            # 503: nothing was applied (the worker was still settling); ask again.
            return None if response.status == 503 else response.status

    assert await eventually(register, within=60, what="a worker to register") == 201
    return await _login(http, email)


async def _login(http: aiohttp.ClientSession, email: str) -> dict[str, str]:
    async with http.post("/v1/auth/login", json={"email": email, "password": PASSWORD}) as r:
        assert r.status == 200, await r.text()
        return {"Authorization": f"Bearer {(await r.json())['accessToken']}"}


def _config(base: str, headers: dict[str, str]) -> SchemathesisConfig:
    """The run's settings: conformance checks on, bounded, deterministic, signed in."""
    return SchemathesisConfig.from_dict({
        "base-url": base,
        "headers": headers,
        "workers": WORKERS,
        "request-timeout": 30,
        "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True,
                       "database": "none"},
        "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True},
                   "fuzzing": {"enabled": True},
                   # Links between operations are few; chains would only repeat the cases
                   # above with real ids, at several times the cost.
                   "stateful": {"enabled": False}},
        "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
    })


def _failures(base: str, role: str, headers: dict[str, str]) -> tuple[list[str], set[str]]:
    """Every failed check (with a curl to reproduce it), and the operations that ran."""
    schema: BaseSchema = schemathesis.openapi.from_url(
        f"{base}/openapi.json", config=_config(base, headers)
    )
    for method, path in EXCLUDED.get(role, []):
        schema = schema.exclude(method=method, path=path)
    failures: set[str] = set()
    tested: set[str] = set()
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.NonFatalError):
            failures.add(f"{event.label}: error {event.info}")
        elif isinstance(event, events.FatalError):
            failures.add(f"fatal: {event.exception!r}")
        elif isinstance(event, events.ScenarioFinished | events.FuzzScenarioFinished):
            recorder = event.recorder
            tested.add(recorder.label)
            failures.update(
                f"{recorder.label} [{node.name}] {node.failure_info.failure.title}: "
                f"{node.failure_info.failure.message}\n    {node.failure_info.code_sample}"
                for nodes in recorder.checks.values()
                for node in nodes
                if node.status == Status.FAILURE and node.failure_info is not None
            )
    return sorted(failures), tested


@pytest.mark.parametrize("role", ["buyer", "seller", "admin"])
def test_every_answer_conforms_to_the_document(live: Seeded, role: str) -> None:
    failures, tested = _failures(live.base, role, live.roles[role])
    # A document that lost its operations would make this pass vacuously.
    assert {"POST /v1/orders", "GET /v1/products", "POST /v1/files"} <= tested, tested
    assert len(tested) >= 30, tested
    assert not failures, f"{len(failures)} non-conforming answers:\n" + "\n".join(failures)
