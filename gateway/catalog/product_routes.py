"""/v1/products: catalog writes through the catalog agent, and reading one product."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import web

from gateway import keys
from gateway.cache.install import changed
from gateway.cache.keys import RESPONSE_CACHE
from gateway.cache.store import pack, product_scope, unpack
from gateway.catalog import writes
from gateway.catalog.keys import PRODUCTS, REVIEWS
from gateway.catalog.schemas import CreateProductBody, ProductAnswer, ProductOut, UpdateProductBody
from gateway.docs.openapi import ETAG_HEADER, IF_MATCH_PATTERN, LOCATION_HEADER, operation
from gateway.http import fields
from gateway.http.caching import (
    IF_NONE_MATCH,
    NOT_MODIFIED,
    PUBLIC_HEADERS,
    cache_control,
    public_answer,
    public_read,
)
from gateway.http.validation import parse_body
from gateway.identity.auth import require_scope
from stores.products import etag, shown_etag
from streams.errors import FieldError, InvalidInput, NotFound
from streams.events.products import (
    ProductArchiveRequested,
    ProductCreateRequested,
    ProductUpdateRequested,
)

routes = web.RouteTableDef()
SCOPE = "products:write"
PRODUCT = "/v1/products/{product_id}"
REVIEWS_INCLUDE = "reviews"
LATEST_REVIEWS = 3


async def _answer(
    request: web.Request, result: dict[str, Any], *, status: int = 200
) -> web.Response:
    """The product the agent answered with, and its ETag (the one a read shows)."""
    version = result.pop("version")
    await changed(request, result["productId"])
    tag = etag(result["productId"], version)
    headers = {"ETag": shown_etag(tag, result["stock"], result["rating"])}
    if status == 201:
        headers["Location"] = f"/v1/products/{result['productId']}"
    return web.json_response(result, status=status, headers=headers)


@routes.post("/v1/products")
@operation(
    "List a new product (sellers and admins)",
    tags=("catalog",),
    auth=True,
    body=CreateProductBody,
    headers={201: {"ETag": ETAG_HEADER, "Location": LOCATION_HEADER}},
    responses={
        201: ("Created; ETag and Location set", ProductOut),
        401: ("Not signed in", None),
        403: ("Not a seller or admin (INSUFFICIENT_SCOPE)", None),
        422: ("Invalid fields", None),
        503: ("No worker answered in time; nothing was applied (Retry-After)", None),
    },
)
async def create_product(request: web.Request) -> web.Response:
    """Hand the new product to the catalog agent and wait for its decision."""
    principal = require_scope(request, SCOPE)
    body = await parse_body(request, CreateProductBody)
    await writes.check_files(request, principal, body.file_ids)
    result = await writes.send(
        request,
        ProductCreateRequested(
            product_id=uuid.uuid4().hex,
            seller_id=principal.user_id,
            name=body.name,
            description=body.description,
            category=body.category,
            price=Decimal(body.price),
            currency=body.currency,
            initial_stock=body.stock,
            file_ids=body.file_ids,
            **writes.command_fields(request, principal),
        ),
    )
    return await _answer(request, result, status=201)


@routes.patch(PRODUCT)
@operation(
    "Change a product (its seller or an admin); If-Match with its ETag is required",
    tags=("catalog",),
    auth=True,
    body=UpdateProductBody,
    parameters=(
        {"name": "If-Match", "in": "header", "required": True,
         "description": "The ETag of the version this change is based on.",
         "schema": {"type": "string", "pattern": IF_MATCH_PATTERN}},
    ),
    headers={200: {"ETag": ETAG_HEADER}},
    responses={
        200: ("Changed; the new ETag is set", ProductOut),
        401: ("Not signed in", None),
        403: ("Not the product's seller or an admin", None),
        404: ("No such product", None),
        409: ("The product is archived (PRODUCT_ARCHIVED)", None),
        412: ("The ETag is stale (PRECONDITION_FAILED)", None),
        422: ("Invalid fields", None),
        428: ("If-Match missing (PRECONDITION_REQUIRED)", None),
        503: ("No worker answered in time; nothing was applied (Retry-After)", None),
    },
)
async def update_product(request: web.Request) -> web.Response:
    """The agent checks ownership and the ETag against its own version, then applies."""
    principal = require_scope(request, SCOPE)
    if_match = writes.required_if_match(request)
    body = await parse_body(request, UpdateProductBody)
    if body.file_ids is not None:
        await writes.check_files(request, principal, body.file_ids)
    result = await writes.send(
        request,
        ProductUpdateRequested(
            product_id=request.match_info["product_id"],
            if_match=if_match,
            name=body.name,
            description=body.description,
            category=body.category,
            price=None if body.price is None else Decimal(body.price),
            currency=body.currency,
            file_ids=body.file_ids,
            **writes.command_fields(request, principal),
        ),
    )
    return await _answer(request, result)


@routes.delete(PRODUCT)
@operation(
    "Archive a product (its seller or an admin); kept for existing orders",
    tags=("catalog",),
    auth=True,
    parameters=(
        {"name": "If-Match", "in": "header", "required": False,
         "description": "Archive only this version (its ETag).",
         "schema": {"type": "string", "pattern": IF_MATCH_PATTERN}},
    ),
    responses={
        204: ("Archived (or already archived)", None),
        401: ("Not signed in", None),
        403: ("Not the product's seller or an admin", None),
        404: ("No such product", None),
        412: ("If-Match was sent and is stale (PRECONDITION_FAILED)", None),
        503: ("No worker answered in time; nothing was applied (Retry-After)", None),
    },
)
async def archive_product(request: web.Request) -> web.Response:
    """Archiving is a soft delete: the product stays readable, hidden from listings."""
    principal = require_scope(request, SCOPE)
    header = request.headers.get("If-Match")
    await writes.send(
        request,
        ProductArchiveRequested(
            product_id=request.match_info["product_id"],
            if_match=None if header is None else writes.entity_tags(header),
            **writes.command_fields(request, principal),
        ),
    )
    await changed(request, request.match_info["product_id"])
    return web.Response(status=204)


@routes.get(PRODUCT)
@operation(
    "One product (archived ones too), with its ETag; ?include=reviews adds its latest reviews",
    tags=("catalog",),
    parameters=(
        IF_NONE_MATCH,
        fields.parameter(ProductOut),
        {"name": "include", "in": "query", "required": False,
         "description": f"reviews: the product's latest {LATEST_REVIEWS} reviews under "
         "`reviews` (its rating is always there), for a product page in one round trip.",
         "schema": {"type": "string", "enum": [REVIEWS_INCLUDE]}},
    ),
    headers=PUBLIC_HEADERS,
    responses={
        200: ("The product (trimmed by ?fields=, with reviews by ?include=)", ProductAnswer),
        304: NOT_MODIFIED,
        404: ("No such product", None),
    },
)
@public_read
async def get_product(request: web.Request) -> web.Response:
    """From the response cache, else the read model; the same answer for every caller."""
    product_id = request.match_info["product_id"]
    names = fields.requested(request, ProductOut)
    include = request.query.get("include")
    if include is not None and include != REVIEWS_INCLUDE:
        raise InvalidInput("the query has invalid parameters", errors=[
            FieldError("include", f"only {REVIEWS_INCLUDE}")
        ])

    async def load() -> bytes | None:
        product = await request.app[PRODUCTS].get(product_id)
        if product is None:
            return None
        doc = fields.select(product.to_json(), names)
        if include is not None:
            latest = await request.app[REVIEWS].page(product_id, limit=LATEST_REVIEWS)
            doc["reviews"] = [review.to_json() for review in latest]
        return pack(product.etag, orjson.dumps(doc))

    cache = request.app.get(RESPONSE_CACHE)
    variant = f"{','.join(sorted(names or ()))}|{include or ''}"
    if cache is None:
        entry = await load()
    else:
        entry = await cache.fetch(product_scope(product_id), variant, load)
    if entry is None:
        raise NotFound("no such product")
    tag, body = unpack(entry)
    settings = request.app[keys.SETTINGS]
    control = cache_control(settings.cache_product_max_age, settings.cache_stale_while_revalidate)
    return public_answer(request, body, control=control, etag=tag)
