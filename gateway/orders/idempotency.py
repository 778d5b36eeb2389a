"""Idempotency-Key records for POST /v1/orders, in Redis.

``idem:orders:{buyerId}:{key}`` -> ``{bodyHash, orderId}``, set with NX and a
TTL *before* the command is sent. Whoever sets it first fixes the order id;
every later request with that key (a retry after a 503, a concurrent twin)
finds it and sends a command for the same order, which the saga creates once.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson
from aiohttp import web
from redis.asyncio import Redis

from streams.errors import InvalidInput, MalformedRequest

HEADER = "Idempotency-Key"
TTL_SECONDS = 24 * 60 * 60
# Printable ASCII without spaces: keys end up in Redis key names and logs.
_KEY = re.compile(r"[\x21-\x7e]{1,255}")


def idempotency_key(request: web.Request) -> str:
    """The request's Idempotency-Key; 400 ``IDEMPOTENCY_KEY_REQUIRED`` if missing or odd."""
    raw = request.headers.get(HEADER, "").strip()
    if not _KEY.fullmatch(raw):
        raise MalformedRequest(
            f"send an '{HEADER}' header (1-255 printable characters) so a retried order "
            "is placed once",
            code="IDEMPOTENCY_KEY_REQUIRED",
        )
    return raw


def body_hash(body: Any) -> str:
    """A stable digest of a request body (key order does not matter)."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


class IdempotencyRecords:
    """Claims an Idempotency-Key for an order, or finds the order it already names."""

    def __init__(self, redis: Redis, *, ttl: int = TTL_SECONDS) -> None:
        self._redis = redis
        self._ttl = ttl

    async def claim(self, buyer_id: str, key: str, digest: str, order_id: str) -> str:
        """The order id for ``key``: ``order_id`` if this call claimed it, else the stored one.

        ``InvalidInput`` (422 ``IDEMPOTENCY_KEY_REUSED``) if the key was used for another body.
        """
        name = f"idem:orders:{buyer_id}:{key}"
        record = orjson.dumps({"bodyHash": digest, "orderId": order_id})
        for _ in range(3):
            if await self._redis.set(name, record, nx=True, ex=self._ttl):
                return order_id
            stored = await self._redis.get(name)
            if stored is None:
                continue  # expired between SET and GET: claim it again
            found = orjson.loads(stored)
            if found["bodyHash"] != digest:
                raise InvalidInput(
                    f"this {HEADER} was already used for a different order body; "
                    "use a new key for a new order",
                    code="IDEMPOTENCY_KEY_REUSED",
                )
            return str(found["orderId"])
        raise RuntimeError(f"could not claim idempotency key {name}")
