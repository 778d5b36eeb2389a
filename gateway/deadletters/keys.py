"""State of the dead letters domain."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from stores.deadletters import DeadLetterRepository

DEAD_LETTERS: web.AppKey[DeadLetterRepository] = web.AppKey("dead_letters")
