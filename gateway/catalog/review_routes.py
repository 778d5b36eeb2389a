"""/v1/products/{id}/reviews: buyers review what they bought; anyone reads reviews."""

from __future__ import annotations

import uuid
from datetime import datetime

from aiohttp import web

from gateway import keys
from gateway.catalog import writes
from gateway.catalog.keys import PRODUCTS, REVIEWS
from gateway.catalog.schemas import ReviewBody, ReviewOut, ReviewPage
from gateway.docs.openapi import operation
from gateway.features.gates import REVIEWS_DISABLED, require_flag
from gateway.http.caching import (
    IF_NONE_MATCH,
    NOT_MODIFIED,
    PUBLIC_HEADERS,
    cache_control,
    public_answer,
    public_read,
)
from gateway.http.pagination import PAGE_PARAMETERS, page_request, page_response
from gateway.http.validation import parse_body
from gateway.identity.auth import authenticate
from stores.reviews import Review
from streams.errors import Forbidden, InvalidCursor, NotFound
from streams.events.products import ReviewSubmitRequested

routes = web.RouteTableDef()
REVIEWS_PATH = "/v1/products/{product_id}/reviews"


@routes.post(REVIEWS_PATH)
@operation(
    "Review a product you bought (one review per buyer and product)",
    tags=("reviews",),
    auth=True,
    body=ReviewBody,
    responses={
        201: ("Reviewed", ReviewOut),
        401: ("Not signed in", None),
        403: ("No completed order with this product (NOT_A_BUYER), or reviews are switched "
              "off (REVIEWS_DISABLED, flag reviews.enabled)", None),
        404: ("No such product", None),
        409: ("Already reviewed (REVIEW_EXISTS)", None),
        422: ("Invalid fields", None),
        503: ("No worker answered in time; nothing was applied (Retry-After)", None),
    },
)
async def create_review(request: web.Request) -> web.Response:
    """Check the purchase in the orders read model; the agent enforces one per buyer."""
    principal = authenticate(request, request.app[keys.TOKENS])
    require_flag(request, "reviews.enabled", principal, code=REVIEWS_DISABLED,
                 detail="reviews are switched off for now")
    product_id = request.match_info["product_id"]
    body = await parse_body(request, ReviewBody)
    if await request.app[PRODUCTS].seller_of(product_id) is None:
        raise NotFound("no such product")
    if not await request.app[REVIEWS].has_completed_purchase(principal.user_id, product_id):
        raise Forbidden(
            "only buyers with a completed order of this product may review it",
            code="NOT_A_BUYER",
        )
    result = await writes.send(
        request,
        ReviewSubmitRequested(
            product_id=product_id,
            review_id=uuid.uuid4().hex,
            rating=body.rating,
            comment=body.comment,
            **writes.command_fields(request, principal),
        ),
    )
    result.pop("productRating", None)
    return web.json_response(result, status=201)


@routes.get(REVIEWS_PATH)
@operation(
    "A product's reviews, newest first",
    tags=("reviews",),
    parameters=(*PAGE_PARAMETERS, IF_NONE_MATCH),
    headers=PUBLIC_HEADERS,
    responses={
        200: ("A page of reviews", ReviewPage),
        304: NOT_MODIFIED,
        400: ("Bad cursor (INVALID_CURSOR)", None),
        404: ("No such product", None),
        422: ("Bad limit", None),
    },
)
@public_read
async def list_reviews(request: web.Request) -> web.Response:
    """Read straight from the read model; the ETag is the digest of the page."""
    product_id = request.match_info["product_id"]
    page = page_request(request, arity=2)
    after = None
    if page.after is not None:
        created, ident = page.after
        if not isinstance(created, datetime) or not isinstance(ident, str):
            raise InvalidCursor("the cursor is not valid; start again without one")
        after = (created, ident)
    if await request.app[PRODUCTS].seller_of(product_id) is None:
        raise NotFound("no such product")
    rows = await request.app[REVIEWS].page(product_id, limit=page.fetch, after=after)
    body = page_response(rows, page, position=_position, render=Review.to_json)
    settings = request.app[keys.SETTINGS]
    control = cache_control(settings.cache_reviews_max_age, settings.cache_stale_while_revalidate)
    return public_answer(request, body, control=control)


def _position(review: Review) -> tuple[datetime, str]:
    return (review.created_at, review.review_id)
