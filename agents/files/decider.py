"""Files: projects ``files`` events into metadata, grants and usage; renders image variants.

The gateway publishes each file fact (upload, delete, grant, revoke, download)
keyed by file id, so one file's events are handled in order by one agent.
Every projection is guarded by the event id (``stores.files``) or counted per
file (``stores.file_usage``), so a redelivered event changes nothing twice;
the events, pushes and answers it causes reuse ids derived from its id.
Facts the gateway waits for (``source`` ``gateway/<instance>``) are answered
on ``replies`` once projected, so the client's next read already sees them.
Image processing runs after that answer, so uploads never wait for Pillow.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Literal

from agents.files import images
from agents.runtime import caused
from agents.runtime.effects import Effects
from agents.runtime.messages import request_message
from agents.runtime.replies import reply
from stores.file_content import ContentMissing, ContentStore
from stores.file_usage import UsageRepository
from stores.files import FileMeta, FileRepository, Grant, GroupGrant
from stores.groups import GroupRepository
from streams.envelope import Envelope, derived_id, utcnow
from streams.events.files import (
    FileAudited,
    FileDeleted,
    FileDownloaded,
    FilePermissionGranted,
    FilePermissionRevoked,
    FileProcessed,
    FileUploaded,
    Variant,
)
from streams.events.groups import FileGroupGranted, FileGroupRevoked

log = logging.getLogger(__name__)
# How often the leader looks for content a crashed gateway left behind (stores.file_sweep).
SOURCE = "agents.files"
GATEWAY_SOURCE = "gateway/"
THUMBNAIL = "thumbnail"
Action = Literal["upload", "download", "delete", "grant", "revoke"]


def thumbnail_id(file_id: str) -> str:
    """The deterministic id of a file's thumbnail content, so re-rendering overwrites it."""
    return derived_id(file_id, THUMBNAIL)


def upload_result(meta: FileMeta) -> dict[str, Any]:
    """The 201 body of an upload."""
    body = meta.to_json()
    return {k: body[k] for k in ("fileId", "name", "size", "contentType", "sha256", "createdAt")}


class FilesDecider:
    """Applies one ``files`` record to the read models and carries out its effects."""

    def __init__(self, effects: Effects, *, max_image_bytes: int) -> None:
        self._effects = effects
        self._max_image_bytes = max_image_bytes
        self._handlers: dict[str, Callable[[Envelope], Awaitable[str]]] = {
            "file.uploaded": self._uploaded,
            "file.deleted": self._deleted,
            "file.permission_granted": self._granted,
            "file.permission_revoked": self._revoked,
            "file.group_granted": self._group_granted,
            "file.group_revoked": self._group_revoked,
            "file.downloaded": self._downloaded,
        }

    @property
    def _files(self) -> FileRepository:
        return self._effects.repo(FileRepository)

    async def handle(self, raw: bytes) -> str:
        """Process one record; returns what happened (for logs and tests)."""
        envelope = Envelope.decode(raw)
        handler = self._handlers.get(envelope.type)
        if handler is None:
            return "ignored"  # e.g. our own file.processed
        return await handler(envelope)

    async def _uploaded(self, envelope: Envelope) -> str:
        up = envelope.payload(FileUploaded)
        is_image = up.content_type in images.IMAGE_TYPES
        doc: dict[str, Any] = {
            "fileId": up.file_id, "ownerId": up.owner_id, "name": up.name, "size": up.size,
            "contentType": up.content_type, "sha256": up.sha256, "createdAt": up.created_at,
            "updatedAt": up.created_at,
            "processing": {"status": "pending" if is_image else "none"},
        }
        if up.product_id is not None:
            doc["productId"] = up.product_id
        await self._files.project_uploaded(doc, event_id=envelope.id)
        meta = await self._files.get(up.file_id)
        if meta is None or meta.deleted:
            # A redelivered upload after its deletion: counting it again would leak quota.
            await self._answer(envelope, None if meta is None else upload_result(meta))
            return "stale"
        await self._effects.repo(UsageRepository).count(up.owner_id, up.file_id, up.size)
        await self._answer(envelope, upload_result(meta))
        await self._audit(envelope, "upload", actor=up.owner_id, file_id=up.file_id,
                          owner=up.owner_id)
        await self._effects.push(f"user:{up.owner_id}", envelope)
        if is_image:
            await self._process(envelope, meta)
        return "uploaded"

    async def _process(self, envelope: Envelope, meta: FileMeta) -> None:
        processed_id = derived_id(envelope.id, "file.processed")
        if meta.processing.get("status") == "pending":
            await self._render(meta, processed_id)
            fresh = await self._files.get(meta.file_id)
            if fresh is None:
                return
            meta = fresh
        if meta.processing.get("status") not in ("done", "failed"):
            return
        # Built from what was recorded, so a redelivery re-emits the very same event.
        processed = await caused.emit(
            self._effects,
            FileProcessed(
                file_id=meta.file_id,
                owner_id=meta.owner_id,
                status=meta.processing["status"],
                error=meta.processing.get("error"),
                width=meta.image["width"] if meta.image else None,
                height=meta.image["height"] if meta.image else None,
                variants=[Variant.model_validate(v) for v in meta.variants],
                processed_at=meta.processing["processedAt"],
            ),
            cause=envelope, source=SOURCE, event_id=processed_id,
            at=meta.processing["processedAt"],
        )
        await self._effects.push(f"user:{meta.owner_id}", processed)

    async def _render(self, meta: FileMeta, processed_id: str) -> None:
        content = self._effects.repo(ContentStore)
        try:
            data = await content.read_all(meta.file_id, limit=self._max_image_bytes)
        except (ContentMissing, ValueError) as exc:
            outcome = images.ImageOutcome(error=str(exc))
        else:
            outcome = await images.render(data)
        now = utcnow()
        variants: list[dict[str, Any]] = []
        thumb = outcome.thumbnail
        if thumb is not None:
            variant = Variant(
                name=THUMBNAIL, variant_id=thumbnail_id(meta.file_id), width=thumb.width,
                height=thumb.height, size=len(thumb.data), content_type=thumb.content_type,
                sha256=_sha256(thumb.data),
            )
            await content.put(
                variant.variant_id, thumb.data, filename=f"{THUMBNAIL}-{meta.name}",
                metadata={"fileId": meta.file_id, "variant": THUMBNAIL},
            )
            variants.append(variant.model_dump(by_alias=True))
        processing: dict[str, Any] = {"status": "failed" if outcome.error else "done",
                                      "processedAt": now}
        if outcome.error:
            processing["error"] = outcome.error
            log.info("file %s: image processing failed: %s", meta.file_id, outcome.error)
        image = None
        if outcome.width is not None and outcome.height is not None:
            image = {"width": outcome.width, "height": outcome.height}
        await self._files.record_processing(
            meta.file_id, processing=processing, image=image, variants=variants,
            event_id=processed_id,
        )

    async def _deleted(self, envelope: Envelope) -> str:
        gone = envelope.payload(FileDeleted)
        outcome = await self._files.mark_deleted(
            gone.file_id, at=gone.deleted_at, event_id=envelope.id
        )
        meta = await self._files.get(gone.file_id)
        if outcome == "missing" or meta is None:
            await self._reject(envelope, "no such file")
            return "rejected"
        await self._effects.repo(UsageRepository).release(meta.owner_id, meta.file_id, meta.size)
        content = self._effects.repo(ContentStore)
        # Metadata first, content second: a crash in between is finished by the redelivery.
        for content_id in {meta.file_id, thumbnail_id(meta.file_id),
                           *(v["variantId"] for v in meta.variants)}:
            await content.delete(content_id)
        await self._answer(envelope, {"fileId": meta.file_id})
        await self._audit(envelope, "delete", actor=gone.deleted_by, file_id=meta.file_id,
                          owner=meta.owner_id)
        await self._effects.push(f"user:{meta.owner_id}", envelope)
        return "deleted"

    async def _granted(self, envelope: Envelope) -> str:
        granted = envelope.payload(FilePermissionGranted)
        meta = await self._files.get(granted.file_id)
        if meta is None or meta.deleted:
            await self._reject(envelope, "no such file")
            return "rejected"
        grant = Grant(
            file_id=granted.file_id, user_id=granted.user_id, access=granted.access,
            source=granted.source, granted_by=granted.granted_by, granted_at=granted.granted_at,
        )
        await self._files.grant(grant, event_id=envelope.id)
        await self._answer(envelope, grant.to_json())
        await self._audit(envelope, "grant", actor=granted.granted_by, file_id=granted.file_id,
                          owner=meta.owner_id, subject=granted.user_id)
        if granted.source != "purchase":  # a buyer hears of a purchase from the order
            await request_message(
                self._effects, envelope, user_id=granted.user_id, template="file_shared",
                params={"fileId": meta.file_id, "fileName": meta.name}, source=SOURCE,
            )
        return "granted"

    async def _revoked(self, envelope: Envelope) -> str:
        revoked = envelope.payload(FilePermissionRevoked)
        meta = await self._files.get(revoked.file_id)
        await self._files.revoke(
            revoked.file_id, revoked.user_id, at=revoked.revoked_at, event_id=envelope.id
        )
        await self._answer(envelope, {"fileId": revoked.file_id, "userId": revoked.user_id})
        await self._audit(envelope, "revoke", actor=revoked.revoked_by, file_id=revoked.file_id,
                          owner=None if meta is None else meta.owner_id, subject=revoked.user_id)
        return "revoked"

    async def _group_granted(self, envelope: Envelope) -> str:
        granted = envelope.payload(FileGroupGranted)
        meta = await self._files.get(granted.file_id)
        if meta is None or meta.deleted:
            await self._reject(envelope, "no such file")
            return "rejected"
        grant = GroupGrant(
            file_id=granted.file_id, group_id=granted.group_id, access=granted.access,
            source=granted.source, granted_by=granted.granted_by, granted_at=granted.granted_at,
        )
        await self._files.grant_group(grant, event_id=envelope.id)
        await self._answer(envelope, grant.to_json())
        await self._audit(envelope, "grant", actor=granted.granted_by, file_id=granted.file_id,
                          owner=meta.owner_id, subject=granted.group_id)
        # The members of the moment hear of it; who may read is still decided per request.
        group = await self._effects.repo(GroupRepository).get(granted.group_id)
        for member in () if group is None else group.members:
            if member not in (meta.owner_id, granted.granted_by):
                await request_message(
                    self._effects, envelope, user_id=member, template="file_shared",
                    params={"fileId": meta.file_id, "fileName": meta.name}, source=SOURCE,
                )
        return "group granted"

    async def _group_revoked(self, envelope: Envelope) -> str:
        revoked = envelope.payload(FileGroupRevoked)
        meta = await self._files.get(revoked.file_id)
        await self._files.revoke_group(
            revoked.file_id, revoked.group_id, at=revoked.revoked_at, event_id=envelope.id
        )
        await self._answer(envelope, {"fileId": revoked.file_id, "groupId": revoked.group_id})
        await self._audit(envelope, "revoke", actor=revoked.revoked_by, file_id=revoked.file_id,
                          owner=None if meta is None else meta.owner_id, subject=revoked.group_id)
        return "group revoked"

    async def _downloaded(self, envelope: Envelope) -> str:
        got = envelope.payload(FileDownloaded)
        await self._audit(envelope, "download", actor=got.user_id, file_id=got.file_id,
                          owner=got.owner_id)
        return "audited"

    async def _answer(self, envelope: Envelope, result: dict[str, Any] | None) -> None:
        if not envelope.source.startswith(GATEWAY_SOURCE):
            return  # e.g. a purchase grant from the order saga: nobody is waiting
        if result is None:
            await self._reject(envelope, "the file was deleted")
            return
        await reply(self._effects, envelope, reply_to=envelope.source[len(GATEWAY_SOURCE):],
                    source=SOURCE, outcome="accepted", result=result)

    async def _reject(self, envelope: Envelope, detail: str) -> None:
        if envelope.source.startswith(GATEWAY_SOURCE):
            await reply(self._effects, envelope, reply_to=envelope.source[len(GATEWAY_SOURCE):],
                        source=SOURCE, outcome="rejected", code="NOT_FOUND", detail=detail)

    async def _audit(
        self, envelope: Envelope, action: Action, *, actor: str, file_id: str,
        owner: str | None, subject: str | None = None,
    ) -> None:
        record = FileAudited(action=action, actor_id=actor, file_id=file_id, owner_id=owner,
                             subject_id=subject)
        await caused.emit(
            self._effects, record, cause=envelope, source=SOURCE, name="audit",
            at=datetime.fromisoformat(envelope.occurred_at),
        )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
