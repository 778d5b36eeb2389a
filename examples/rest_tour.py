"""The REST tour: accounts, a product with a file, an order through the saga, the download.

Start the stack in one terminal (``make run``), then in another, from the clone::

    .venv/bin/python examples/rest_tour.py                  # the dev gateway, 127.0.0.1:8080
    .venv/bin/python examples/rest_tour.py --url http://127.0.0.1:9000

The gateway comes from ``--url``, else ``MERCATO_URL``, else ``http://127.0.0.1:8080``.
Every run registers two fresh accounts (a buyer and a seller), so it can be run again.
Exit status: 0 when the order completed and the buyer downloaded the file, 1 when a step
answered something else (the problem+json is printed), 2 when no gateway answers.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import secrets
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp

DEFAULT_URL = "http://127.0.0.1:8080"
PASSWORD = "correct horse battery"  # noqa: S105 - a throwaway demo account
# Terminal order states: the saga moves an order to exactly one of them.
ENDS = {"completed", "rejected", "payment_failed", "cancelled", "refunded"}
T = TypeVar("T")


class TourFailed(Exception):
    """A step answered something other than what the tour expects."""


class NoGateway(Exception):
    """Nothing answers at the gateway URL."""


class Api:
    """A JSON client for one gateway: each call checks its status and prints one line."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def call(
        self, method: str, path: str, *, token: str | None = None, expect: int = 200,
        quiet: bool = False, **kwargs: Any,
    ) -> Any:
        """The decoded body of ``method path``; ``TourFailed`` unless the status is ``expect``."""
        headers: dict[str, str] = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        try:
            async with self.session.request(
                method, self.base + path, headers=headers, **kwargs
            ) as response:
                body = await _body(response)
                status = response.status
        except aiohttp.ClientConnectionError as exc:
            raise NoGateway(str(exc)) from exc
        if status != expect:
            raise TourFailed(f"{method} {path} answered {status}, not {expect}: {_show(body)}")
        if not quiet:
            print(f"{method} {path} -> {status} {_show(body)}")
        return body


async def _body(response: aiohttp.ClientResponse) -> Any:
    if response.content_type in ("application/json", "application/problem+json"):
        return await response.json(content_type=None)
    return await response.read()


def _show(body: Any, limit: int = 400) -> str:
    text = body.decode(errors="replace") if isinstance(body, bytes) else json.dumps(body)
    return text if len(text) <= limit else text[:limit] + "…"


async def poll(probe: Callable[[], Awaitable[T | None]], *, within: float, what: str) -> T:
    """The first non-None result of ``probe``, retried for ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        found = await probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise TourFailed(f"gave up after {within:g}s waiting for {what}")
        await asyncio.sleep(0.25)


async def register(api: Api, email: str, name: str, role: str) -> None:
    """Register; a 503 (the worker is still starting) is retried for a minute."""
    body = {"email": email, "password": PASSWORD, "name": name, "role": role}
    deadline = time.monotonic() + 60
    while True:
        try:
            await api.call("POST", "/v1/auth/register", json=body, expect=201)
            return
        except TourFailed as exc:
            if " answered 503" not in str(exc) or time.monotonic() > deadline:
                raise
            print("the worker is not answering yet (503); retrying", file=sys.stderr)
            await asyncio.sleep(2)


async def login(api: Api, email: str) -> str:
    """An access token for ``email``."""
    answer = await api.call(
        "POST", "/v1/auth/login", json={"email": email, "password": PASSWORD}, quiet=True
    )
    print(f"POST /v1/auth/login -> 200 (signed in as {email})")
    token: str = answer["accessToken"]
    return token


async def tour(api: Api) -> None:
    """Every step of the tour, in order; raises on the first unexpected answer."""
    await api.call("GET", "/health/live")
    run = secrets.token_hex(3)
    buyer_email, seller_email = f"ada-{run}@example.com", f"grace-{run}@example.com"
    await register(api, buyer_email, "Ada", "buyer")
    await register(api, seller_email, "Grace", "seller")
    # Emails are compared trimmed and case-folded: this is the same account.
    taken = await api.call("POST", "/v1/auth/register", expect=409, json={
        "email": f" {buyer_email.upper()}", "password": PASSWORD, "name": "Ada"})
    if taken["code"] != "EMAIL_TAKEN":
        raise TourFailed(f"a second registration answered {taken['code']}, not EMAIL_TAKEN")
    buyer, seller = await login(api, buyer_email), await login(api, seller_email)
    await api.call("GET", "/v1/users/me", token=buyer)

    form = aiohttp.FormData()
    form.add_field("file", io.BytesIO(b"Field guide\nChapter 1: the marketplace\n"),
                   filename="field-guide.txt", content_type="text/plain")
    file_id = (await api.call("POST", "/v1/files", token=seller, data=form, expect=201))["fileId"]
    product_id = (await api.call("POST", "/v1/products", token=seller, expect=201, json={
        "name": f"Field guide {run}", "description": "A short guide", "category": "books",
        "price": "12.50", "currency": "USD", "stock": 5, "fileIds": [file_id]}))["productId"]

    async def stocked() -> bool | None:
        product = await api.call("GET", f"/v1/products/{product_id}", quiet=True)
        return True if product["stock"] == 5 else None

    await poll(stocked, within=30, what="the inventory to hold the product's stock")

    # The same Idempotency-Key on a retry places the order once.
    order_id = (await api.call(
        "POST", "/v1/orders", token=buyer, expect=202,
        headers={"Idempotency-Key": str(uuid.uuid4())},
        json={"items": [{"productId": product_id, "quantity": 1}], "paymentMethod": "tok_visa"},
    ))["orderId"]

    async def settled() -> dict[str, Any] | None:
        order: dict[str, Any] = await api.call(
            "GET", f"/v1/orders/{order_id}", token=buyer, quiet=True
        )
        return order if order["status"] in ENDS else None

    order = await poll(settled, within=60, what=f"order {order_id} to settle")
    steps = " -> ".join(step["status"] for step in order["history"])
    print(f"order {order_id} {order['status']}: {steps}")
    if order["status"] != "completed":
        raise TourFailed(f"the order ended {order['status']}: {_show(order)}")

    async def downloaded() -> bytes | None:
        async with api.session.get(
            f"{api.base}/v1/files/{file_id}/content", headers={"Authorization": f"Bearer {buyer}"}
        ) as response:
            return await response.read() if response.status == 200 else None

    content = await poll(downloaded, within=30, what="the buyer's access to the file")
    print(f"GET /v1/files/{file_id}/content -> 200 {content.decode()!r}")
    print("tour complete")


def main() -> int:
    """Parse the arguments, run the tour, map failures to the exit status."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("MERCATO_URL", DEFAULT_URL),
                        help="the gateway (default: $MERCATO_URL or %(default)s)")
    base = parser.parse_args().url.rstrip("/")

    async def run() -> None:
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await tour(Api(session, base))

    try:
        asyncio.run(run())
    except NoGateway as exc:
        print(f"no Mercato gateway answers at {base} ({exc}).\n"
              "Start the stack with `make run`, or pass --url / set MERCATO_URL.",
              file=sys.stderr)
        return 2
    except TourFailed as exc:
        print(f"tour failed: {exc}", file=sys.stderr)
        return 1
    except (aiohttp.ClientError, TimeoutError) as exc:
        print(f"tour failed: the gateway at {base} stopped answering ({exc!r})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
