"""The topics readiness reports lag on are exactly those the worker's domain agents read."""

from __future__ import annotations

from pathlib import Path

import faust

from agents.app import DOMAINS, faust_settings
from config import Settings
from streams.topics import worker_sources
from tests.support.recording import RecordingEffects, close_unstarted_consumer_loop


def test_worker_sources_are_the_topics_the_domain_agents_read(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, jwt_secret="x" * 48, topic_prefix="u.")
    app = faust.App(settings.app_id, **faust_settings(settings, store="memory://"))
    effects = RecordingEffects()
    read: set[str] = set()
    try:
        for domain, install in DOMAINS:
            # Left out on purpose: see TopicSpec.worker_source.
            if domain in ("analytics", "deadletters", "webhooks"):
                continue
            for agent in install(app, settings, effects).values():
                read.update(agent.channel.topics)
    finally:
        close_unstarted_consumer_loop(app)
    assert read == {settings.topic(name) for name in worker_sources()}
