"""The catalog as the gateway installs it: read models, product ownership for files, routes."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from gateway import keys
from gateway.cache.install import response_cache_ctx
from gateway.catalog import listing_routes, product_routes, review_routes, suggest
from gateway.catalog.keys import PRODUCTS, REVIEWS, SUGGESTIONS
from gateway.catalog.writes import SellerOwnsProduct
from gateway.domain import Domain
from gateway.files.keys import PRODUCT_OWNERSHIP
from stores.products import ProductRepository
from stores.reviews import ReviewRepository
from stores.suggestions import SuggestionRepository


def _ownership(app: web.Application) -> None:
    # Files may be linked to a product by its seller (or an admin).
    app[PRODUCT_OWNERSHIP] = SellerOwnsProduct(app)


async def catalog_ctx(app: web.Application) -> AsyncIterator[None]:
    """Products, reviews and suggestions read models over the database ``mongo_ctx`` opened."""
    db = app[keys.MONGO_DB]
    app[PRODUCTS] = ProductRepository(db)
    app[REVIEWS] = ReviewRepository(db)
    app[SUGGESTIONS] = SuggestionRepository(db)
    yield


DOMAIN = Domain(
    "catalog",
    setup=_ownership,
    contexts=(catalog_ctx, response_cache_ctx),
    routes=(product_routes.routes, listing_routes.routes, review_routes.routes, suggest.routes),
)
