"""Pure catalog decisions: a command against a product's state, no I/O.

A decision is a JSON-able dict stored in the catalog table before any effect
runs. Accepted decisions carry the product snapshot they lead to, so a
redelivered command re-projects and re-emits exactly what it decided then.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from stores.products import etag
from streams.envelope import format_time
from streams.events.products import (
    ProductArchiveRequested,
    ProductCommand,
    ProductCreateRequested,
    ProductFacts,
    ProductUpdateRequested,
)

Decision = dict[str, Any]
Facts = dict[str, Any]
# Command field -> product field, in the order "changed" lists them.
UPDATABLE = ("name", "description", "category", "price", "currency", "file_ids")


def rejected(code: str, detail: str) -> Decision:
    """A refusal, stored so a redelivered command gets the same answer."""
    return {"outcome": "rejected", "code": code, "detail": detail}


def decide(command: ProductCommand, product: Facts | None, now: datetime) -> Decision:
    """The outcome of ``command`` against ``product`` (None: it does not exist)."""
    if isinstance(command, ProductCreateRequested):
        return _create(command, product, now)
    if product is None:
        return rejected("NOT_FOUND", "no such product")
    if product["sellerId"] != command.actor_id and not command.actor_is_admin:
        return rejected("FORBIDDEN", "only the product's seller or an admin may change it")
    if isinstance(command, ProductUpdateRequested):
        return _update(command, product, now)
    if isinstance(command, ProductArchiveRequested):
        return _archive(command, product, now)
    raise TypeError(f"not a catalog command: {type(command).__name__}")


def matches(if_match: list[str], product: Facts) -> bool:
    """If-Match semantics (strong comparison): ``*`` or the current version's tag."""
    current = etag(product["productId"], product["version"])
    return any(tag == "*" or tag == current for tag in if_match)


def _create(command: ProductCreateRequested, product: Facts | None, now: datetime) -> Decision:
    if product is not None:
        return rejected("PRODUCT_EXISTS", "a product with this id already exists")
    facts = ProductFacts(
        product_id=command.product_id,
        seller_id=command.seller_id,
        name=command.name,
        description=command.description,
        category=command.category,
        price=command.price,
        currency=command.currency,
        status="active",
        file_ids=list(command.file_ids),
        version=1,
        created_at=now,
        updated_at=now,
    )
    return {
        "outcome": "accepted",
        "kind": "created",
        "at": format_time(now),
        "product": facts.model_dump(mode="json", by_alias=True),
        "initialStock": command.initial_stock,
    }


def _update(command: ProductUpdateRequested, product: Facts, now: datetime) -> Decision:
    if not matches(command.if_match, product):
        return rejected(
            "PRECONDITION_FAILED", "the product changed since you read it; fetch it again"
        )
    if product["status"] == "archived":
        return rejected("PRODUCT_ARCHIVED", "an archived product cannot be changed")
    current = ProductFacts.model_validate(product)
    changes = {
        field: getattr(command, field)
        for field in UPDATABLE
        if getattr(command, field) is not None
        and getattr(command, field) != getattr(current, field)
    }
    if not changes:
        return {"outcome": "accepted", "kind": "unchanged", "product": product, "changed": []}
    facts = current.model_copy(
        update={**changes, "version": current.version + 1, "updated_at": now}
    )
    return {
        "outcome": "accepted",
        "kind": "updated",
        "at": format_time(now),
        "product": facts.model_dump(mode="json", by_alias=True),
        "changed": ["fileIds" if f == "file_ids" else f for f in changes],
    }


def _archive(command: ProductArchiveRequested, product: Facts, now: datetime) -> Decision:
    if command.if_match is not None and not matches(command.if_match, product):
        return rejected(
            "PRECONDITION_FAILED", "the product changed since you read it; fetch it again"
        )
    if product["status"] == "archived":
        return {"outcome": "accepted", "kind": "unchanged", "product": product, "changed": []}
    archived = {
        **product,
        "status": "archived",
        "version": product["version"] + 1,
        "updatedAt": format_time(now),
    }
    return {"outcome": "accepted", "kind": "archived", "at": format_time(now), "product": archived}
