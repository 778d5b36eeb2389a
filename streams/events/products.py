"""Catalog and reviews: commands (internal ``product-commands``) and public ``products`` events.

Every command and event is keyed by product id, so one product's catalog
changes and its reviews are decided in order by one agent, next to its rating.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from streams.commands import CATALOG
from streams.events.money import Amount, Currency
from streams.registry import Command, Payload, Timestamp, event

COMMANDS = "product-commands"
ProductStatus = Literal["active", "archived"]
ProductField = Literal["name", "description", "category", "price", "currency", "fileIds"]


class ProductCommand(Command):
    """Fields every command on ``product-commands`` carries."""

    product_id: str = Field(description="The product the command is about (the record key).")
    actor_id: str = Field(description="Who asked.")
    actor_is_admin: bool = Field(default=False, description="Admins may change any product.")
    deadline: Timestamp = Field(description="After this instant a worker drops the command.")
    reply_to: str = Field(description="Id of the gateway instance waiting for the answer.")


@event("product.create_requested", topic=COMMANDS, key="productId",
       summary="A seller (or admin) asked to list a new product.",
       answers=CATALOG)
class ProductCreateRequested(ProductCommand):
    """Internal command: the product as the seller described it."""

    seller_id: str
    name: str
    description: str
    category: str
    price: Amount
    currency: Currency
    initial_stock: int = Field(default=0, ge=0)
    file_ids: list[str] = Field(default_factory=list)


@event("product.update_requested", topic=COMMANDS, key="productId",
       summary="The owner (or an admin) asked to change a product, given the ETag they saw.",
       answers=CATALOG)
class ProductUpdateRequested(ProductCommand):
    """Internal command: only the fields present change."""

    if_match: list[str] = Field(description="Entity tags of If-Match; '*' matches any version.")
    name: str | None = None
    description: str | None = None
    category: str | None = None
    price: Amount | None = None
    # Pattern on the field itself (not an optional Annotated) so schema samplers see it.
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    file_ids: list[str] | None = None


@event("product.archive_requested", topic=COMMANDS, key="productId",
       summary="The owner (or an admin) asked to archive (soft-delete) a product.",
       answers=CATALOG)
class ProductArchiveRequested(ProductCommand):
    """Internal command: archived products stay readable for existing orders."""

    if_match: list[str] | None = Field(default=None, description="Optional If-Match tags.")


@event("review.submit_requested", topic=COMMANDS, key="productId",
       summary="A buyer who completed an order with the product asked to review it.",
       answers=CATALOG)
class ReviewSubmitRequested(ProductCommand):
    """Internal command: the gateway has checked the purchase; the agent checks uniqueness."""

    review_id: str
    rating: int = Field(ge=1, le=5)
    comment: str


class ProductFacts(Payload):
    """A product's catalog fields as of one version."""

    product_id: str
    seller_id: str
    name: str
    description: str
    category: str
    price: Amount
    currency: Currency
    status: ProductStatus
    file_ids: list[str]
    version: int
    created_at: Timestamp
    updated_at: Timestamp


@event("product.created", topic="products", key="productId",
       summary="A product was listed; its initial stock follows as inventory.stock_changed.")
class ProductCreated(ProductFacts):
    """Public event: the new product."""

    initial_stock: int


@event("product.updated", topic="products", key="productId",
       summary="A product's catalog fields changed (price, name, ...); carries the new values.")
class ProductUpdated(ProductFacts):
    """Public event: the product after the change, and which fields changed."""

    changed: list[ProductField]
    actor_id: str


@event("product.archived", topic="products", key="productId",
       summary="A product was archived: hidden from listings, kept for existing orders.")
class ProductArchived(Payload):
    """Public event: the product is no longer offered."""

    product_id: str
    seller_id: str
    version: int
    actor_id: str
    archived_at: Timestamp


@event("review.created", topic="products", key="productId",
       summary="A buyer reviewed a product; carries the product's new rating.")
class ReviewCreated(Payload):
    """Public event: one review and the rating it leads to."""

    review_id: str
    product_id: str
    buyer_id: str
    rating: int = Field(ge=1, le=5)
    comment: str
    created_at: Timestamp
    rating_average: float
    rating_count: int
