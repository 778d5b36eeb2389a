"""State of the catalog domain: the products, reviews and suggestion read models."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from stores.products import ProductRepository
    from stores.reviews import ReviewRepository
    from stores.suggestions import SuggestionRepository

PRODUCTS: web.AppKey[ProductRepository] = web.AppKey("products")
REVIEWS: web.AppKey[ReviewRepository] = web.AppKey("reviews")
SUGGESTIONS: web.AppKey[SuggestionRepository] = web.AppKey("suggestions")
