"""The webhooks agent: each delivery's state, from requested to delivered or failed.

Records of the ``webhooks`` topic are keyed by webhook id, so one endpoint's deliveries,
their attempts and its changes arrive in order at one agent, the only writer of their
state. The state lives in the agent's table (a RocksDB store with a changelog), so a
restarted worker finds its pending deliveries and their next attempt times again; the
delivery log in MongoDB is its projection, written from the table's state, so a replay
writes the same document again.

The agent never makes a request: the dispatcher (``agents.webhooks.dispatcher``) does,
off every agent, and reports each attempt back as ``webhook.delivery_attempted``. An
attempt is applied once: only the one numbered after the attempts already counted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, MutableMapping
from datetime import datetime
from typing import Any

from agents.runtime import caused
from agents.runtime.effects import Effects
from agents.runtime.messages import request_message
from stores.webhooks import DeliveryLog, WebhookRepository
from streams.envelope import Envelope, format_time
from streams.events.webhooks import (
    DeliveryAttempted,
    DeliveryRequested,
    RetryRequested,
    WebhookChanged,
    WebhookDisabled,
)

log = logging.getLogger(__name__)
SOURCE = "agents.webhooks"
# Attempts that say nothing about the endpoint's health: it is gone or switched off.
NOT_COUNTED = frozenset({"WEBHOOK_DELETED", "WEBHOOK_DISABLED"})
State = dict[str, Any]


def delivery_key(delivery_id: str) -> str:
    """The table key of a delivery's state."""
    return f"delivery:{delivery_id}"


def endpoint_key(webhook_id: str) -> str:
    """The table key of an endpoint's consecutive failures."""
    return f"endpoint:{webhook_id}"


class DeliveriesDecider:
    """Applies one ``webhooks`` record to the table, the delivery log and the outbox."""

    def __init__(
        self,
        table: MutableMapping[str, Any],
        effects: Effects,
        *,
        disable_after: int,
        on_change: Callable[[State], None],
        on_delete: Callable[[str], Iterable[str]],
    ) -> None:
        self._table = table
        self._effects = effects
        self._disable_after = disable_after
        self._on_change = on_change  # keeps the dispatcher's index of due deliveries current
        self._on_delete = on_delete  # a deleted endpoint's delivery ids, out of that index

    async def handle(self, raw: bytes) -> str:
        """Process one record; returns what happened (for logs and tests)."""
        envelope = Envelope.decode(raw)
        if envelope.type == "webhook.delivery_requested":
            return await self._requested(envelope.payload(DeliveryRequested))
        if envelope.type == "webhook.retry_requested":
            return await self._retry(envelope.payload(RetryRequested))
        if envelope.type == "webhook.delivery_attempted":
            return await self._attempted(envelope, envelope.payload(DeliveryAttempted))
        if envelope.type == "webhook.changed":
            return await self._changed(envelope.payload(WebhookChanged))
        return "ignored"  # webhook.disabled: its effects were carried out with its cause

    async def _requested(self, request: DeliveryRequested) -> str:
        key = delivery_key(request.delivery_id)
        state = self._table.get(key)
        if state is None:
            state = {
                "deliveryId": request.delivery_id,
                "webhookId": request.webhook_id,
                "eventId": request.event_id,
                "type": request.event_type,
                "body": request.body,
                "status": "pending",
                "attempts": 0,
                "retryBase": 0,
                "lastStatusCode": None,
                "lastError": None,
                "nextAttemptAt": format_time(request.requested_at),
                "createdAt": format_time(request.requested_at),
                "version": 1,
            }
            self._table[key] = state
            outcome = "requested"
        else:
            outcome = "duplicate"  # the same event routed again: one delivery
        await self._recorded(state)
        return outcome

    async def _retry(self, retry: RetryRequested) -> str:
        key = delivery_key(retry.delivery_id)
        state = self._table.get(key)
        if state is None or state["webhookId"] != retry.webhook_id:
            return "unknown"
        at = format_time(retry.at)
        # One endpoint's records arrive in order, so a retry no later than the last one
        # applied is that one (or an older one) again, after a crash or a rewind of the group:
        # applying it would reopen a delivery already made and POST it once more.
        last = state.get("retryAt")
        if last is not None and datetime.fromisoformat(at) <= datetime.fromisoformat(last):
            await self._recorded(state)
            return "stale"
        body = state.get("body") or retry.body
        if body is None:  # final before the log kept bodies: nothing to send again
            return "no body"
        # A retried delivery gets the whole schedule again, counted from its attempts so far.
        base = state["attempts"] if state["status"] != "pending" else state["retryBase"]
        state = {
            **state, "body": body, "status": "pending", "retryBase": base, "retryAt": at,
            "nextAttemptAt": at, "version": state["version"] + 1,
        }
        self._table[key] = state
        await self._recorded(state)
        return "retrying"

    async def _attempted(self, envelope: Envelope, attempt: DeliveryAttempted) -> str:
        key = delivery_key(attempt.delivery_id)
        state = self._table.get(key)
        if state is None:
            return "unknown"
        if state["status"] != "pending" or attempt.attempt != state["attempts"] + 1:
            await self._recorded(state)  # a replay: the log shows the table's state
            health = self._table.get(endpoint_key(attempt.webhook_id)) or {}
            if health.get("disabledBy") == envelope.id:
                # The attempt that disabled the endpoint, again: its effects may not all
                # have been committed, and repeating them is idempotent (derived ids).
                await self._disable(envelope, attempt, health["failures"])
            return "stale"
        next_at = attempt.next_attempt_at
        status = "delivered" if attempt.ok else ("pending" if next_at is not None else "failed")
        state = {
            **state,
            "status": status,
            "attempts": attempt.attempt,
            "lastStatusCode": attempt.status_code,
            "lastError": attempt.error,
            "nextAttemptAt": None if next_at is None or attempt.ok else format_time(next_at),
            "version": state["version"] + 1,
        }
        if status != "pending":
            # Final: the table keeps what dedupes the event again, not its body (the log
            # keeps that for a manual retry), or it would grow by every event delivered.
            state.pop("body", None)
        self._table[key] = state
        await self._recorded(state)
        if attempt.error not in NOT_COUNTED:
            await self._health(envelope, attempt)
        return status

    async def _health(self, envelope: Envelope, attempt: DeliveryAttempted) -> None:
        """Count the endpoint's failures in a row; disable it when there are too many."""
        key = endpoint_key(attempt.webhook_id)
        health = self._table.get(key) or {"failures": 0, "disabled": False}
        if attempt.ok:
            if health["failures"]:
                self._table[key] = {**health, "failures": 0}
            return
        health = {**health, "failures": health["failures"] + 1}
        disable = health["failures"] >= self._disable_after and not health["disabled"]
        if disable:
            health = {**health, "disabled": True, "disabledBy": envelope.id}
        self._table[key] = health
        if disable:
            await self._disable(envelope, attempt, health["failures"])

    async def _disable(self, envelope: Envelope, attempt: DeliveryAttempted, failures: int) -> None:
        repo = self._effects.repo(WebhookRepository)
        endpoint = await repo.get(attempt.webhook_id)
        if endpoint is None:
            return  # deleted meanwhile: nobody to tell
        await repo.disable(attempt.webhook_id, f"{failures} failed attempts in a row")
        await caused.emit(
            self._effects,
            WebhookDisabled(
                webhook_id=attempt.webhook_id, owner_id=endpoint.owner_id, failures=failures,
                at=attempt.at,
            ),
            cause=envelope, source=SOURCE,
        )
        await request_message(
            self._effects, envelope, user_id=endpoint.owner_id, template="webhook_disabled",
            params={"webhookId": endpoint.webhook_id, "url": endpoint.url, "failures": failures},
            source=SOURCE,
        )
        log.warning("webhook %s disabled after %d failed attempts", attempt.webhook_id, failures)

    async def _changed(self, change: WebhookChanged) -> str:
        key = endpoint_key(change.webhook_id)
        if change.change == "deleted":
            # Its deliveries will never be made nor read: they would only take room.
            for delivery_id in list(self._on_delete(change.webhook_id)):
                self._table.pop(delivery_key(delivery_id), None)
            self._table.pop(key, None)
            await self._effects.repo(DeliveryLog).forget(change.webhook_id)
            return "deleted"
        health = self._table.get(key)
        if change.enabled and health is not None and (health["disabled"] or health["failures"]):
            # Enabled again by its owner: it gets the whole run of failures afresh.
            self._table[key] = {"failures": 0, "disabled": False}
        return "changed"

    async def _recorded(self, state: State) -> None:
        await self._effects.repo(DeliveryLog).record(state["deliveryId"], state)
        self._on_change(state)


def due_at(state: State) -> datetime | None:
    """When a pending delivery's next attempt is due (None: it is not pending)."""
    if state.get("status") != "pending" or state.get("nextAttemptAt") is None:
        return None
    return datetime.fromisoformat(state["nextAttemptAt"])
