"""The files agent under redelivery: Faust's test harness, recording effects, real MongoDB.

The repositories are the real ones (their event-id guards live in MongoDB
queries, so faking them would test nothing); emits and pushes are recorded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from agents.app import create_worker_app
from agents.files.decider import FilesDecider, thumbnail_id
from config import Settings
from gateway.files.sniff import TEXT
from stores.file_content import ContentStore
from streams.envelope import Envelope, new_event
from streams.events.files import (
    FileDeleted,
    FilePermissionGranted,
    FilePermissionRevoked,
    FileUploaded,
)
from tests.support.files import chunk_owners, mongo, png
from tests.support.recording import RecordingEffects

pytestmark = pytest.mark.integration
AT = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    client, database = mongo(settings)
    yield database
    await client.close()


def _ids(records: list[tuple[str, Envelope]]) -> list[tuple[str, str, str]]:
    return [(topic, e.type, e.id) for topic, e in records]


async def test_redelivered_file_events_change_nothing_twice(
    settings: Settings, db: AsyncDatabase[dict[str, Any]]
) -> None:
    effects = RecordingEffects(db=db)
    data = png(64, 32)
    file_id = "f-redelivered"
    writer = effects.repo(ContentStore).writer(file_id, "a.png")
    await writer.write(data)
    await writer.close({})

    def event(payload: Any) -> bytes:
        return new_event(payload, key=file_id, source="gateway/g-1").encode()

    uploaded = event(FileUploaded(
        file_id=file_id, owner_id="u-o", name="a.png", size=len(data), content_type="image/png",
        sha256=writer.sha256, created_at=AT))
    granted = event(FilePermissionGranted(file_id=file_id, user_id="u-g", source="owner",
                                          granted_by="u-o", granted_at=AT))
    revoked = event(FilePermissionRevoked(file_id=file_id, user_id="u-g", revoked_by="u-o",
                                          revoked_at=AT))
    deleted = event(FileDeleted(file_id=file_id, owner_id="u-o", deleted_by="u-o",
                                deleted_at=AT))

    decider = FilesDecider(effects, max_image_bytes=settings.max_upload_bytes)

    async def state() -> tuple[Any, Any, Any]:
        return (await db["files"].find_one({"_id": file_id}),
                await db["file_usage"].find_one({"_id": "u-o"}),
                await db["file_grants"].find_one({"_id": f"{file_id}:u-g"}))

    async def twice(raw: bytes) -> tuple[Any, Any, Any]:
        emitted, pushed = len(effects.emitted), len(effects.pushed)
        await decider.handle(raw)
        first = await state()
        first_effects = (_ids(effects.emitted[emitted:]), _ids(effects.pushed[pushed:]))
        emitted, pushed = len(effects.emitted), len(effects.pushed)
        await decider.handle(raw)  # redelivery
        assert await state() == first
        # Effects repeat with the very same event ids: consumers dedupe on them.
        assert (_ids(effects.emitted[emitted:]), _ids(effects.pushed[pushed:])) == first_effects
        return first

    meta, usage, _ = await twice(uploaded)
    assert meta["version"] == 2  # projected once, processed once
    assert meta["processing"]["status"] == "done"
    assert meta["image"] == {"width": 64, "height": 32}
    assert usage["bytes"] == len(data)
    _, _, grant = await twice(granted)
    assert grant["active"] is True
    _, _, grant = await twice(revoked)
    assert grant["active"] is False
    meta, usage, _ = await twice(deleted)
    assert meta["deleted"] is True
    assert usage["bytes"] == 0
    # A late redelivery of the upload after the delete must not count the quota again.
    await decider.handle(uploaded)
    assert (await db["file_usage"].find_one({"_id": "u-o"}) or {})["bytes"] == 0

    owners = await chunk_owners(db)
    assert file_id not in owners
    assert thumbnail_id(file_id) not in owners
    types = [e.type for topic, e in effects.emitted if topic == "files"]
    assert set(types) == {"file.processed"}
    assert {c for c, _ in effects.pushed} == {"user:u-o"}


async def test_faust_agent_wiring_projects_and_survives_poison(
    settings: Settings, db: AsyncDatabase[dict[str, Any]], tmp_path: Path
) -> None:
    effects = RecordingEffects(db=db)
    # Like the registrations unit test: a plain app whose transport is never started.
    plain = Settings(data_dir=tmp_path, jwt_secret="x" * 48, topic_prefix="u.")
    worker = create_worker_app(plain, store="memory://", effects=effects)
    up = new_event(FileUploaded(
        file_id="f-wired", owner_id="u-w", name="t.txt", size=2, content_type=TEXT,
        sha256="ab", created_at=AT), key="f-wired", source="gateway/g-1").encode()
    async with worker.agents["files"].test_context() as agent:
        await agent.put(key=b"f-wired", value=up)
        await agent.put(key=b"f-wired", value=up)  # redelivery
        await agent.put(key=b"f-wired", value=b"not json")
    # Iterating the stream built Faust's consumer, whose thread owns an event loop that is
    # only closed when a started transport stops; this harness never starts it.
    consumer: Any = worker.app.consumer
    consumer._thread.thread_loop.close()
    meta = await db["files"].find_one({"_id": "f-wired"})
    assert meta is not None
    assert (meta["version"], meta["processing"]) == (1, {"status": "none"})
    assert (await db["file_usage"].find_one({"_id": "u-w"}) or {})["bytes"] == 2
    replies = [e for topic, e in effects.emitted if topic == "replies"]
    assert len(replies) == 2
    assert replies[0].id == replies[1].id
    [letter] = [e for topic, e in effects.emitted if topic == "dlq"]
    assert letter.data["agent"] == "files"
