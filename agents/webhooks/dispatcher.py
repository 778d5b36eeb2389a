"""The dispatcher: makes the HTTP attempts of due deliveries, off every agent.

Faust runs timers on every worker and a table iterates only this worker's partitions, so
each worker attempts exactly the deliveries it owns. An index of due deliveries is built
from the table once after each assignment (when the table's recovery is complete: it is
empty after a restart and partitions move) and kept current by the agent (``note``), so a
tick reads only the index, never the whole table. Each attempt is a task of its own,
started only while its endpoint has a free slot and the worker too, so a slow or dead
endpoint fills its own slots and nothing else: neither another endpoint's deliveries nor
any agent (the agent only ever writes state; it never awaits a request).

An attempt's outcome goes back to the ``webhooks`` topic (``webhook.delivery_attempted``)
and is applied by the agent, in order with the endpoint's other records. Until then the
attempt stays marked as launched here, so no tick makes it twice however far the agent
lags; only an attempt that could not report is made again.
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
from agents.webhooks.addresses import CheckedResolver, UrlRefused, checked_literal, checked_url
from agents.webhooks.backoff import next_delay
from agents.webhooks.deliveries import NOT_COUNTED, SOURCE, State, delivery_key, due_at
from config import Settings
from stores.webhooks import WebhookRepository
from streams.envelope import Envelope, derived_id, utcnow
from streams.events.webhooks import DeliveryAttempted

log = logging.getLogger(__name__)
# The longest error text kept in the delivery log.
MAX_ERROR = 300
# What is read of an endpoint's answer: its status is the outcome, the body only a hint.
MAX_ANSWER = 4096


class Dispatcher:
    """Due deliveries (delivery id -> webhook id, due time, attempts) and their attempts."""

    def __init__(self, table: Mapping[str, Any], effects: Effects, settings: Settings) -> None:
        self._table = table
        self._effects = effects
        self._settings = settings
        self._schedule = settings.webhook_retry_delays
        self._due: dict[str, tuple[str, datetime, int]] = {}
        self._by_webhook: dict[str, set[str]] = {}  # every delivery in the table, per endpoint
        self._stale = True  # the index must be built from the table (start, assignment)
        # Attempt number launched per delivery: cleared once the agent applied it.
        self._launched: dict[str, int] = {}
        self._busy: dict[str, int] = {}  # attempts in flight per webhook id
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    def note(self, state: State) -> None:
        """Keep the index current after the agent stored ``state``."""
        delivery_id = state["deliveryId"]
        self._by_webhook.setdefault(state["webhookId"], set()).add(delivery_id)
        launched = self._launched.get(delivery_id)
        if launched is not None and state["attempts"] >= launched:
            del self._launched[delivery_id]
        at = due_at(state)
        if at is None:
            self._due.pop(delivery_id, None)
        else:
            self._due[delivery_id] = (state["webhookId"], at, state["attempts"])

    def forget(self, webhook_id: str) -> set[str]:
        """Drop a deleted endpoint's deliveries from the index; returns their ids."""
        self._build()
        ids = self._by_webhook.pop(webhook_id, set())
        for delivery_id in ids:
            self._due.pop(delivery_id, None)
            self._launched.pop(delivery_id, None)
        return ids

    def reassigned(self) -> None:
        """Partitions moved: forget the index and build it again from the table."""
        self._due, self._by_webhook = {}, {}
        self._stale = True

    def rescan(self) -> None:
        """Build the index from this worker's table partitions (once per assignment)."""
        due: dict[str, tuple[str, datetime, int]] = {}
        by_webhook: dict[str, set[str]] = {}
        for key, state in self._table.items():
            if not key.startswith("delivery:") or not isinstance(state, dict):
                continue
            by_webhook.setdefault(state["webhookId"], set()).add(state["deliveryId"])
            at = due_at(state)
            if at is not None:
                due[state["deliveryId"]] = (state["webhookId"], at, state["attempts"])
        self._due, self._by_webhook = due, by_webhook
        # An attempt applied while its partition was elsewhere is no longer in flight.
        self._launched = {
            delivery_id: attempt for delivery_id, attempt in self._launched.items()
            if delivery_id in due and due[delivery_id][2] < attempt
        }
        self._stale = False

    def _build(self) -> None:
        if not self._stale:
            return
        try:
            self.rescan()
        except Exception:  # e.g. a table still recovering; the next tick tries again
            log.warning("webhook deliveries index not built", exc_info=True)

    async def tick(self, now: datetime | None = None) -> int:
        """Start the attempts that are due and have a free slot; returns how many started."""
        self._build()
        now = now or utcnow()
        started = 0
        for delivery_id, (webhook_id, at, attempts) in sorted(
            self._due.items(), key=lambda item: item[1][1]
        ):
            if at > now:
                break
            launched = self._launched.get(delivery_id)
            if launched is not None and launched > attempts:
                continue  # made, and reported or being made: the agent has yet to apply it
            if len(self._tasks) >= self._settings.webhook_concurrency:
                break
            if self._busy.get(webhook_id, 0) >= self._settings.webhook_endpoint_concurrency:
                continue  # this endpoint's slots are full; the others go on
            self._launched[delivery_id] = attempts + 1
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
        except Exception:
            log.exception("webhook delivery %s attempt %d not reported", delivery_id, attempt)
            # Nothing will come back for it: a later tick makes it again.
            if self._launched.get(delivery_id) == attempt:
                del self._launched[delivery_id]
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
            host, _ = checked_url(endpoint.url)
            # An IP literal never reaches the resolver, so it is checked here; a name is
            # checked by the resolver the connection is made with, on the address it uses.
            checked_literal(host, allow_private=allow_private)
            timestamp = int(time.time())
            headers = signing.headers(endpoint.secret, state["eventId"], timestamp, body)
            async with self._client().post(
                endpoint.url, data=body, headers=headers, allow_redirects=False,
            ) as response:
                # Bounded: an endpoint answering an endless body must not fill the worker.
                await response.content.read(MAX_ANSWER)
                response.release()
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
