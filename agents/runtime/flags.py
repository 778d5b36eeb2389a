"""The worker's flag book: the ``config`` topic followed for as long as the worker runs.

Agents read flags through ``Worker.flags`` (``book.enabled(name, user_id)``); a change an
admin makes applies here within a fetch, without a restart. Until its first load ends the
book answers with the defaults, since an agent must not wait on it to process records.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust

from config import Settings
from streams.flags.book import FlagBook, following

log = logging.getLogger(__name__)
RETRY_SECONDS = 5.0


def install(app: faust.App, settings: Settings, client_id: str | None) -> FlagBook:
    """A flag book for the worker, started as one of ``app``'s tasks (stopped with it)."""
    book = FlagBook(settings, client=f"worker-{client_id or 'local'}")
    faust_app: Any = app  # Faust's decorators are untyped

    async def follow_flags() -> None:
        while True:
            try:
                async with following(book):
                    # Faust cancels its tasks on stop; ``following`` then closes the consumer.
                    await book.ended()
                # Following ended by itself (``stop`` logged why): start the book again
                # rather than run on with flags that no longer change.
                log.warning("flag book stopped following, restarting")
                await asyncio.sleep(RETRY_SECONDS)
            except Exception as exc:
                # A broker not up yet, or the topic not created: the worker keeps processing
                # with the flags it has, and tries again.
                log.warning("flag book not started, retrying: %r", exc)
                await asyncio.sleep(RETRY_SECONDS)

    faust_app.task(follow_flags)
    return book
