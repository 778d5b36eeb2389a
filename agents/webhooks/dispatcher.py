"""The dispatcher: makes the HTTP attempts of due deliveries, off every agent.

Faust runs timers on every worker and a table iterates only this worker's partitions, so
each worker attempts exactly the deliveries it owns. An index of due deliveries is kept by
the agent (``note``) and rebuilt from the table now and then (it is empty after a restart:
the pending deliveries and their times come back from the table). Each attempt is a task
of its own, started only while its endpoint has a free slot and the worker too, so a slow
or dead endpoint fills its own slots and nothing else: neither another endpoint's
deliveries nor any agent (the agent only ever writes state; it never awaits a request).

An attempt's outcome goes back to the ``webhooks`` topic (``webhook.delivery_attempted``)
and is applied by the agent, in order with the endpoint's other records. Until then the
attempt stays marked as launched here, so the next tick does not make it twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import aiohttp

from agents.runtime import caused
from agents.runtime.effects import Effects
from agents.webhooks import signing
from agents.webhooks.addresses import CheckedResolver, UrlRefused, checked_url, resolve
from agents.webhooks.backoff import next_delay
from agents.webhooks.deliveries import NOT_COUNTED, SOURCE, State, delivery_key, due_at
from config import Settings
from stores.webhooks import WebhookRepository
from streams.envelope import Envelope, derived_id, utcnow
from streams.events.webhooks import DeliveryAttempted

log = logging.getLogger(__name__)
# Rebuild the index from the table now and then: empty after a restart, and partitions move.
RESCAN_SECONDS = 10.0
# The longest error text kept in the delivery log.
MAX_ERROR = 300


class Dispatcher:
    """Due deliveries (delivery id -> webhook id, due time, attempts) and their attempts."""

    def __init__(self, table: Mapping[str, Any], effects: Effects, settings: Settings) -> None:
        self._table = table
        self._effects = effects
        self._settings = settings
        self._schedule = settings.webhook_retry_delays
        self._due: dict[str, tuple[str, datetime, int]] = {}
        # Attempt number launched per delivery, and when: cleared once the agent applied it.
        self._launched: dict[str, tuple[int, float]] = {}
        self._busy: dict[str, int] = {}  # attempts in flight per webhook id
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._rescanned = -RESCAN_SECONDS

    def note(self, state: State) -> None:
        """Keep the index current after the agent stored ``state``."""
        delivery_id = state["deliveryId"]
        launched = self._launched.get(delivery_id)
        if launched is not None and state["attempts"] >= launched[0]:
            del self._launched[delivery_id]
        at = due_at(state)
        if at is None:
            self._due.pop(delivery_id, None)
        else:
            self._due[delivery_id] = (state["webhookId"], at, state["attempts"])

    def rescan(self) -> None:
        """Rebuild the index from this worker's table partitions."""
        due: dict[str, tuple[str, datetime, int]] = {}
        for key, state in self._table.items():
            if not key.startswith("delivery:") or not isinstance(state, dict):
                continue
            at = due_at(state)
            if at is not None:
                due[state["deliveryId"]] = (state["webhookId"], at, state["attempts"])
        self._due = due

    async def tick(self, now: datetime | None = None) -> int:
        """Start the attempts that are due and have a free slot; returns how many started."""
        clock = time.monotonic()
        if clock - self._rescanned >= RESCAN_SECONDS:
            self._rescanned = clock
            try:
                self.rescan()
            except Exception:  # e.g. a table still recovering; the next rescan catches up
                log.warning("webhook deliveries rescan failed", exc_info=True)
        now = now or utcnow()
        # An attempt whose outcome never came back (lost in a rebalance) is made again.
        stale = self._settings.webhook_timeout + RESCAN_SECONDS
        started = 0
        for delivery_id, (webhook_id, at, attempts) in sorted(
            self._due.items(), key=lambda item: item[1][1]
        ):
            if at > now:
                break
            launched = self._launched.get(delivery_id)
            if launched is not None and launched[0] > attempts and clock - launched[1] < stale:
                continue
            if len(self._tasks) >= self._settings.webhook_concurrency:
                break
            if self._busy.get(webhook_id, 0) >= self._settings.webhook_endpoint_concurrency:
                continue  # this endpoint's slots are full; the others go on
            self._launched[delivery_id] = (attempts + 1, clock)
            self._busy[webhook_id] = self._busy.get(webhook_id, 0) + 1
            task = asyncio.create_task(self._attempt(delivery_id, webhook_id, attempts + 1))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            started += 1
        return started

    async def aclose(self) -> None:
        """Cancel the attempts in flight (their deliveries stay pending) and close the client."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _attempt(self, delivery_id: str, webhook_id: str, attempt: int) -> None:
        try:
            state = self._table.get(delivery_key(delivery_id))
            if state is None:
                return
            ok, status, error = await self._post(state)
            await self._report(state, attempt, ok=ok, status=status, error=error)
        except Exception:  # the next tick after the stale time tries again
            log.exception("webhook delivery %s attempt %d not reported", delivery_id, attempt)
        finally:
            left = self._busy.get(webhook_id, 1) - 1
            if left:
                self._busy[webhook_id] = left
            else:
                self._busy.pop(webhook_id, None)

    async def _post(self, state: State) -> tuple[bool, int | None, str | None]:
        """One request: (delivered, status code, error)."""
        endpoint = await self._effects.repo(WebhookRepository).get(state["webhookId"])
        if endpoint is None:
            return False, None, "WEBHOOK_DELETED"
        if not endpoint.enabled:
            return False, None, "WEBHOOK_DISABLED"
        body = state["body"].encode()
        # Dev stacks deliver to local servers; everywhere else only public addresses.
        allow_private = self._settings.env == "dev"
        try:
            host, port = checked_url(endpoint.url)
            # Checked before the request (an IP literal never reaches the resolver) and by
            # the resolver the connection is made with.
            await resolve(host, port, allow_private=allow_private)
            timestamp = int(time.time())
            headers = signing.headers(endpoint.secret, state["eventId"], timestamp, body)
            async with self._client().post(
                endpoint.url, data=body, headers=headers, allow_redirects=False,
            ) as response:
                await response.read()
                return 200 <= response.status < 300, response.status, (
                    None if response.status < 300 else f"HTTP {response.status}"
                )
        except UrlRefused as refused:
            return False, None, f"{refused.code}: {refused.detail}"[:MAX_ERROR]
        except TimeoutError:
            return False, None, f"no answer within {self._settings.webhook_timeout:g} s"
        except aiohttp.ClientError as exc:
            return False, None, f"{type(exc).__name__}: {exc}"[:MAX_ERROR]

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:  # opened inside the worker's loop, on the first attempt
            connector = aiohttp.TCPConnector(
                resolver=CheckedResolver(allow_private=self._settings.env == "dev"),
                limit=self._settings.webhook_concurrency,
                limit_per_host=self._settings.webhook_endpoint_concurrency,
                use_dns_cache=False,  # every connection is checked on its own resolution
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self._settings.webhook_timeout),
                headers={"user-agent": "Mercato-Webhooks/1"},
            )
        return self._session

    async def _report(
        self, state: State, attempt: int, *, ok: bool, status: int | None, error: str | None
    ) -> None:
        now = utcnow()
        next_at = None
        if not ok and error not in NOT_COUNTED:  # a gone endpoint is not retried
            delay = next_delay(attempt - state["retryBase"], self._schedule)
            next_at = None if delay is None else now + timedelta(seconds=delay)
        cause = Envelope.decode(state["body"])
        await caused.emit(
            self._effects,
            DeliveryAttempted(
                webhook_id=state["webhookId"], delivery_id=state["deliveryId"], attempt=attempt,
                ok=ok, status_code=status, error=error, next_attempt_at=next_at, at=now,
            ),
            cause=cause, source=SOURCE, key=state["webhookId"],
            event_id=derived_id(state["deliveryId"], "attempt", str(attempt), str(now)),
        )
