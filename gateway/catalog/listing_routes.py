"""GET /v1/products: filters, search, multi-key sort and keyset cursors over the read model."""

from __future__ import annotations

import dataclasses
import hashlib
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from aiohttp import web

from gateway.catalog.keys import PRODUCTS
from gateway.catalog.listing_cache import listing_answer
from gateway.catalog.schemas import PRICE_BOUND_PATTERN, ProductOut, ProductPageAnswer
from gateway.docs.openapi import comma_list_pattern, operation
from gateway.http import fields
from gateway.http.caching import (
    IF_NONE_MATCH,
    NOT_MODIFIED,
    PUBLIC_HEADERS,
    public_read,
)
from gateway.http.pagination import PAGE_PARAMETERS, page_request, page_response
from stores.product_listing import DEFAULT_SORT, SORT_FIELDS, Listing
from stores.products import category_key, product, to_micros
from stores.search import query_terms
from streams.errors import FieldError, InvalidCursor, InvalidInput

routes = web.RouteTableDef()
MAX_SORT_KEYS = 4
MAX_QUERY = 200
STATUSES = {"active": "active", "archived": "archived", "all": None}


def _query(name: str, description: str, **schema: Any) -> dict[str, Any]:
    return {
        "name": name, "in": "query", "required": False, "description": description,
        "schema": {"type": "string", **schema},
    }


def parse_sort(raw: str | None, errors: list[FieldError]) -> tuple[tuple[str, int], ...]:
    """``-createdAt,price`` as (name, direction) pairs over the allowlist."""
    if raw is None or not raw.strip():
        return ()
    keys_: list[tuple[str, int]] = []
    for part in (p.strip() for p in raw.split(",")):
        name = part.removeprefix("-")
        if name not in SORT_FIELDS or any(name == k for k, _ in keys_):
            errors.append(FieldError("sort", f"use up to {MAX_SORT_KEYS} distinct keys of "
                                     f"{', '.join(SORT_FIELDS)}, '-' for descending"))
            return ()
        keys_.append((name, -1 if part.startswith("-") else 1))
    if len(keys_) > MAX_SORT_KEYS:
        errors.append(FieldError("sort", f"at most {MAX_SORT_KEYS} keys"))
    return tuple(keys_)


def _price(request: web.Request, name: str, errors: list[FieldError]) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        value = Decimal(-1)
    if not value.is_finite() or value < 0 or value > 10**9:
        errors.append(FieldError(name, "must be a decimal amount, e.g. 12.50"))
        return None
    return to_micros(value)


def listing_from(request: web.Request, *, fetch: int) -> Listing:
    """The ``Listing`` the query string asks for; 422 with every bad parameter named."""
    errors: list[FieldError] = []
    q = request.query.get("q", "")
    if len(q) > MAX_QUERY:
        errors.append(FieldError("q", f"at most {MAX_QUERY} characters"))
    sort = parse_sort(request.query.get("sort"), errors)
    status = request.query.get("status", "active")
    if status not in STATUSES:
        errors.append(FieldError("status", "one of active, archived, all"))
    min_micros = _price(request, "minPrice", errors)
    max_micros = _price(request, "maxPrice", errors)
    if errors:
        raise InvalidInput("the query has invalid parameters", errors=errors)
    terms = tuple(query_terms(q))
    category = request.query.get("category")
    return Listing(
        # Searching ranks by score; an explicit sort only breaks its ties.
        sort=sort or DEFAULT_SORT,
        terms=terms,
        status=STATUSES[status],
        category_key=category_key(category) if category else None,
        seller_id=request.query.get("sellerId") or None,
        min_micros=min_micros,
        max_micros=max_micros,
        fetch=fetch,
    )


@routes.get("/v1/products")
@operation(
    "Browse and search products (active ones unless status says otherwise)",
    tags=("catalog",),
    parameters=(
        _query("q", "Search words; every word must match name, category or description "
               "(prefixes too). Ranked by relevance: name > category > description."),
        _query("category", "Exact category, case-insensitive."),
        _query("minPrice", "Inclusive lower bound, decimal string.", pattern=PRICE_BOUND_PATTERN),
        _query("maxPrice", "Inclusive upper bound, decimal string.", pattern=PRICE_BOUND_PATTERN),
        _query("sellerId", "Only this seller's products."),
        _query("sort", "Comma-separated keys of createdAt, price, name, rating; '-' for "
               "descending. Default -createdAt.",
               pattern=comma_list_pattern(SORT_FIELDS, most=MAX_SORT_KEYS, descending=True)),
        _query("status", "active (default), archived or all.", enum=list(STATUSES)),
        *PAGE_PARAMETERS,
        fields.parameter(ProductOut),
        IF_NONE_MATCH,
    ),
    headers=PUBLIC_HEADERS,
    responses={
        200: ("A page of products (each trimmed by ?fields=)", ProductPageAnswer),
        304: NOT_MODIFIED,
        400: ("Bad cursor, or a cursor of another sort or query (INVALID_CURSOR)", None),
        422: ("Invalid parameters", None),
    },
)
@public_read
async def list_products(request: web.Request) -> web.Response:
    """One keyset page of the read model, through the response cache; ETag of its bytes."""
    page = page_request(request)
    listing = listing_from(request, fetch=page.fetch)
    names = fields.requested(request, ProductOut)
    if page.after is not None:
        if not listing.valid_position(page.after):
            raise InvalidCursor("the cursor belongs to another sort or query; start again")
        listing = dataclasses.replace(listing, after=page.after)

    async def render() -> bytes:
        rows = await request.app[PRODUCTS].page(listing)
        body = page_response(
            rows, page, position=listing.position, render=lambda doc: product(doc).to_json()
        )
        return orjson.dumps(fields.select_page(body, names))

    # The query string as sent is the key: every parameter shapes the page.
    key = hashlib.sha256(request.query_string.encode()).hexdigest()
    return await listing_answer(request, key, render)
