"""Catalog plumbing for the routes: commands to the catalog agent, entity tags, ownership."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from gateway import keys
from gateway.catalog.keys import PRODUCTS
from gateway.docs.openapi import IF_MATCH_PATTERN
from gateway.files.keys import FILES
from gateway.identity.auth import Principal
from gateway.runtime import commands
from gateway.runtime.commands import new_deadline
from stores.products import version_tag
from streams.errors import FieldError, InvalidInput, MalformedRequest, PreconditionRequired
from streams.events.products import ProductCommand

IF_MATCH = re.compile(IF_MATCH_PATTERN)

MAX_FILES = 20


def command_fields(request: web.Request, principal: Principal) -> dict[str, Any]:
    """Actor, deadline and reply address every product command needs."""
    return {
        "actor_id": principal.user_id,
        "actor_is_admin": principal.is_admin,
        "deadline": new_deadline(request.app[keys.SETTINGS]),
        "reply_to": request.app[keys.COMMANDS].instance_id,
    }


async def send(request: web.Request, payload: ProductCommand) -> dict[str, Any]:
    """Send ``payload`` to the catalog agent and wait; its result, or a domain error."""
    return await commands.ask(request, payload)


def entity_tags(header: str) -> list[str]:
    """The entity tags of an ``If-Match`` value (``*`` kept as is).

    ``MalformedRequest`` unless it is ``*`` or quoted tags (RFC 9110): a malformed
    precondition could otherwise match nothing and pass for "no precondition".
    """
    if not IF_MATCH.match(header.strip()):
        raise MalformedRequest(
            'If-Match must be * or entity tags such as "3" (the ETag of a GET)',
            code="MALFORMED_REQUEST",
        )
    # A read's tag carries the stock and rating after the version (stores.products.
    # shown_etag); a change is checked against the version only, which the agent knows.
    return [version_tag(tag.strip()) for tag in header.split(",") if tag.strip()]


def required_if_match(request: web.Request) -> list[str]:
    """The ``If-Match`` tags; a change without them is refused (428), it could lose updates."""
    header = request.headers.get("If-Match")
    if header is None or not header.strip():
        raise PreconditionRequired(
            "send If-Match with the product's ETag (read it with GET first)"
        )
    return entity_tags(header)


async def check_files(request: web.Request, principal: Principal, file_ids: list[str]) -> None:
    """Only live files of the caller (any file, for admins) may illustrate a product."""
    errors = []
    for i, file_id in enumerate(file_ids):
        meta = await request.app[FILES].get(file_id)
        if meta is None or meta.deleted:
            errors.append(FieldError(f"fileIds.{i}", "no such file"))
        elif meta.owner_id != principal.user_id and not principal.is_admin:
            errors.append(FieldError(f"fileIds.{i}", "not your file"))
    if errors:
        raise InvalidInput("the body has invalid fields", errors=errors)


class SellerOwnsProduct:
    """The files' ownership hook: admins, and the seller of an existing product."""

    def __init__(self, app: web.Application) -> None:
        # The repository is opened at startup; look it up per call, not at construction.
        self._app = app

    async def __call__(self, principal: Principal, product_id: str) -> bool:
        """Whether ``principal`` may attach files to ``product_id``."""
        if principal.is_admin:
            return True
        if "seller" not in principal.roles:
            return False
        return await self._app[PRODUCTS].seller_of(product_id) == principal.user_id
