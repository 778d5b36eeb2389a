"""Wiring of the files agent on a Faust app, with the leader's orphaned-content sweep."""

from __future__ import annotations

import logging
from typing import Any

import faust
from pymongo.errors import PyMongoError

from agents.files.decider import FilesDecider
from agents.runtime.declare import Agents, guarded_agent, source_topic
from agents.runtime.effects import Effects
from config import Settings
from stores.file_sweep import OrphanSweeper
from streams.envelope import utcnow

log = logging.getLogger(__name__)
SWEEP_SECONDS = 600.0


def install(app: faust.App, settings: Settings, effects: Effects) -> Agents:
    """Declare the files topic and agent (and the orphan sweep) on ``app``; returns it by name."""
    decider = FilesDecider(effects, max_image_bytes=settings.max_upload_bytes)

    async def sweep_orphaned_content() -> None:
        try:
            swept = await effects.repo(OrphanSweeper).sweep(utcnow())
        except PyMongoError as exc:
            log.warning("orphaned file content not swept: %r", exc)
            return
        if swept.files or swept.chunk_sets:
            log.info("removed orphaned file content",
                     extra={"files": swept.files, "chunkSets": swept.chunk_sets})

    # On the leader only: one worker sweeps (a sweep on several would be harmless, just idle).
    faust_app: Any = app  # Faust's decorators are untyped
    faust_app.timer(interval=SWEEP_SECONDS, on_leader=True)(sweep_orphaned_content)

    agent = guarded_agent(
        app,
        name="files",
        topic=source_topic(app, settings, "files"),
        effects=effects,
        handle=decider.handle,
    )
    return {"files": agent}
