"""Webhook endpoints (written by the gateway) and their delivery log (by the webhooks agent).

An endpoint is configuration its owner edits, read by the router per event and by the
dispatcher per attempt, so MongoDB holds it; delivery state that must survive a restart
lives in the webhooks agent's table, and ``webhook_deliveries`` is its projection.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pymongo import DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from stores import mongo
from stores.keyset import keyset_after
from streams.envelope import format_time, utcnow

ENDPOINTS = "webhooks"
DELIVERIES = "webhook_deliveries"
# How long the delivery log keeps a delivery (and the body a manual retry sends again).
DELIVERY_RETENTION_SECONDS = 30 * 24 * 3600
INDEXES = {
    ENDPOINTS: [
        IndexModel([("ownerId", 1), ("createdAt", DESCENDING), ("_id", DESCENDING)],
                   name="by_owner_newest"),
        # The router's question: enabled endpoints subscribed to a type, of some owners.
        IndexModel([("enabled", 1), ("events", 1), ("ownerId", 1)], name="by_subscription"),
    ],
    DELIVERIES: [
        IndexModel([("webhookId", 1), ("createdAt", DESCENDING), ("_id", DESCENDING)],
                   name="by_webhook_newest"),
        # The log would grow with every event delivered; a month is what its readers need.
        IndexModel([("createdAt", 1)], name="expire_old",
                   expireAfterSeconds=DELIVERY_RETENTION_SECONDS),
    ],
}


@dataclasses.dataclass(frozen=True, slots=True)
class Endpoint:
    """One registered webhook endpoint."""

    webhook_id: str
    owner_id: str
    admin: bool  # an admin's endpoint receives every owner's events
    url: str
    events: list[str]
    description: str | None
    secret: str
    enabled: bool
    created_at: datetime
    disabled_reason: str | None = None
    # When ``events`` last changed (registration, or a PATCH of events).
    subscribed_at: datetime | None = None

    @property
    def since(self) -> datetime:
        """Events that occurred before this are not the endpoint's, even when replayed."""
        return self.subscribed_at or self.created_at

    def to_json(self) -> dict[str, Any]:
        """The API's endpoint object (the secret is shown only when created)."""
        return {
            "webhookId": self.webhook_id,
            "url": self.url,
            "events": self.events,
            "description": self.description,
            "enabled": self.enabled,
            "disabledReason": self.disabled_reason,
            "createdAt": format_time(self.created_at),
        }


class WebhookRepository:
    """Intention-revealing access to the ``webhooks`` collection."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._endpoints = db[ENDPOINTS]

    async def create(self, endpoint: Endpoint) -> None:
        """Store a new endpoint (its id is fresh)."""
        await self._endpoints.insert_one({
            "_id": endpoint.webhook_id,
            "ownerId": endpoint.owner_id,
            "admin": endpoint.admin,
            "url": endpoint.url,
            "events": endpoint.events,
            "description": endpoint.description,
            "secret": endpoint.secret,
            "enabled": endpoint.enabled,
            "disabledReason": None,
            "createdAt": endpoint.created_at,
            "subscribedAt": endpoint.since,
        })

    async def count_owned(self, owner_id: str) -> int:
        """How many endpoints ``owner_id`` has."""
        return await self._endpoints.count_documents({"ownerId": owner_id})

    async def get(self, webhook_id: str) -> Endpoint | None:
        """The endpoint, whoever owns it."""
        doc = await self._endpoints.find_one({"_id": webhook_id})
        return None if doc is None else _endpoint(doc)

    async def owned(self, owner_id: str, webhook_id: str) -> Endpoint | None:
        """The endpoint if it belongs to ``owner_id``."""
        doc = await self._endpoints.find_one({"_id": webhook_id, "ownerId": owner_id})
        return None if doc is None else _endpoint(doc)

    async def page(
        self, owner_id: str, *, limit: int, after: tuple[datetime, str] | None = None
    ) -> list[Endpoint]:
        """Up to ``limit`` of the owner's endpoints, newest first, after ``after``."""
        query: dict[str, Any] = {"ownerId": owner_id}
        if after is not None:
            query.update(keyset_after("createdAt", after))
        cursor = self._endpoints.find(query).sort([("createdAt", DESCENDING), ("_id", DESCENDING)])
        return [_endpoint(doc) for doc in await cursor.limit(limit).to_list()]

    async def update(
        self, owner_id: str, webhook_id: str, changes: dict[str, Any]
    ) -> Endpoint | None:
        """Apply ``changes`` (camelCase fields) to the owner's endpoint; None if not theirs."""
        if changes.get("enabled") is True:
            changes = {**changes, "disabledReason": None}
        if "events" in changes:
            # MongoDB keeps milliseconds: the router compares event times with this one.
            now = utcnow()
            since = now.replace(microsecond=now.microsecond // 1000 * 1000)
            changes = {**changes, "subscribedAt": since}
        doc = await self._endpoints.find_one_and_update(
            {"_id": webhook_id, "ownerId": owner_id}, {"$set": changes},
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else _endpoint(doc)

    async def delete(self, owner_id: str, webhook_id: str) -> bool:
        """Delete the owner's endpoint; False if there was none."""
        result = await self._endpoints.delete_one({"_id": webhook_id, "ownerId": owner_id})
        return result.deleted_count > 0

    async def disable(self, webhook_id: str, reason: str) -> None:
        """Idempotent: the agent disables an endpoint that keeps failing."""
        await mongo.update_one(
            self._endpoints, {"_id": webhook_id},
            {"$set": {"enabled": False, "disabledReason": reason}},
        )

    async def any_enabled(self) -> bool:
        """Whether any endpoint at all is enabled (the routers' shortcut)."""
        return await self._endpoints.find_one({"enabled": True}, {"_id": 1}) is not None

    async def subscribed(self, event_types: Iterable[str], owners: Iterable[str]) -> list[Endpoint]:
        """Enabled endpoints subscribed to one of ``event_types``: admins', or ``owners``'."""
        query = {
            "enabled": True,
            "events": {"$in": list(event_types)},
            "$or": [{"admin": True}, {"ownerId": {"$in": sorted(set(owners))}}],
        }
        return [_endpoint(doc) async for doc in self._endpoints.find(query)]


class DeliveryLog:
    """The ``webhook_deliveries`` projection of the webhooks agent's delivery state."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._deliveries = db[DELIVERIES]

    async def record(self, delivery_id: str, state: dict[str, Any]) -> None:
        """Write the delivery's current state; repeating the same state changes nothing.

        Guarded by the state's ``version`` (one more per change), so an older state
        flushed after a newer one (held writes are unordered) is not applied.
        """
        fields = {name: state.get(name) for name in _LOGGED}
        await mongo.update_one(
            self._deliveries,
            {"_id": delivery_id, "version": {"$not": {"$gte": state["version"]}}},
            {"$set": {**fields, "version": state["version"]},
             # The agent's table drops the body once the delivery is final; a manual retry
             # takes it from here.
             "$setOnInsert": {"createdAt": datetime.fromisoformat(state["createdAt"]),
                              "body": state.get("body")}},
            upsert=True,
        )

    async def get(self, webhook_id: str, delivery_id: str) -> dict[str, Any] | None:
        """One delivery of ``webhook_id`` as the API shows it."""
        doc = await self.entry(webhook_id, delivery_id)
        return None if doc is None else delivery_json(doc)

    async def entry(self, webhook_id: str, delivery_id: str) -> dict[str, Any] | None:
        """One delivery of ``webhook_id``, raw, with the body it sends (if still logged)."""
        return await self._deliveries.find_one({"_id": delivery_id, "webhookId": webhook_id})

    async def forget(self, webhook_id: str) -> None:
        """Delete the deliveries of a deleted endpoint (nobody may read them any more)."""
        await self._deliveries.delete_many({"webhookId": webhook_id})

    async def page(
        self, webhook_id: str, *, limit: int, after: tuple[datetime, str] | None = None
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` deliveries of ``webhook_id``, newest first (raw documents)."""
        query: dict[str, Any] = {"webhookId": webhook_id}
        if after is not None:
            query.update(keyset_after("createdAt", after))
        cursor = self._deliveries.find(query, {"body": 0}).sort(
            [("createdAt", DESCENDING), ("_id", DESCENDING)]
        )
        return list(await cursor.limit(limit).to_list())


# The delivery state's fields the log keeps current (the body is written once, at insert).
_LOGGED = (
    "webhookId", "eventId", "type", "status", "attempts", "lastStatusCode", "lastError",
    "nextAttemptAt",
)


def delivery_json(doc: dict[str, Any]) -> dict[str, Any]:
    """The API's delivery object."""
    return {
        "deliveryId": doc["_id"],
        "eventId": doc["eventId"],
        "type": doc["type"],
        "status": doc["status"],
        "attempts": doc["attempts"],
        "lastStatusCode": doc.get("lastStatusCode"),
        "lastError": doc.get("lastError"),
        "nextAttemptAt": doc.get("nextAttemptAt"),
        "createdAt": format_time(doc["createdAt"]),
    }


def _endpoint(doc: dict[str, Any]) -> Endpoint:
    return Endpoint(
        webhook_id=doc["_id"],
        owner_id=doc["ownerId"],
        admin=bool(doc.get("admin")),
        url=doc["url"],
        events=list(doc["events"]),
        description=doc.get("description"),
        secret=doc["secret"],
        enabled=bool(doc["enabled"]),
        created_at=doc["createdAt"],
        disabled_reason=doc.get("disabledReason"),
        subscribed_at=doc.get("subscribedAt"),
    )
