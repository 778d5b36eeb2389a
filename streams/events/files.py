"""File events on ``files`` (keyed by file id) and the files audit record on ``audit``.

The gateway publishes uploads, downloads, deletions and permission changes as
facts; the files agent projects them (metadata, grants, usage) and publishes
``file.processed`` once an image's variants exist.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from streams.commands import FILES
from streams.events.audit import KEY as AUDIT_KEY
from streams.events.audit import AuditRecord
from streams.registry import Command, Payload, event

GrantSource = Literal["owner", "admin", "purchase"]
ProcessingStatus = Literal["done", "failed"]


@event(
    "file.uploaded",
    topic="files",
    key="fileId",
    summary="A file's bytes are stored; its metadata is to be projected by the files agent.",
    answers=FILES,
)
class FileUploaded(Command):
    """Public: a new file exists (content already in GridFS under ``fileId``)."""

    file_id: str
    owner_id: str
    name: str = Field(description="Sanitised display name.")
    size: int = Field(ge=0)
    content_type: str = Field(description="Sniffed from the bytes, never taken from the client.")
    sha256: str = Field(description="Lower-case hex digest of the content.")
    product_id: str | None = None
    created_at: datetime


@event(
    "file.downloaded",
    topic="files",
    key="fileId",
    summary="A caller received a file's content (or a range of it).",
)
class FileDownloaded(Payload):
    """Public: feeds analytics and the audit trail."""

    file_id: str
    owner_id: str
    user_id: str = Field(description="Who downloaded.")
    bytes: int = Field(ge=0, description="Bytes sent in this response.")
    partial: bool = Field(description="True for a 206 range response.")
    variant: str | None = Field(default=None, description="Variant name, if not the original.")
    at: datetime


@event(
    "file.deleted",
    topic="files",
    key="fileId",
    summary="A file was deleted: metadata is soft-deleted and the content removed.",
    answers=FILES,
)
class FileDeleted(Command):
    """Public: the file is gone for everyone."""

    file_id: str
    owner_id: str
    deleted_by: str
    deleted_at: datetime


@event(
    "file.permission_granted",
    topic="files",
    key="fileId",
    summary="A user may now read a file (granted by its owner, an admin, or a purchase).",
    answers=FILES,
)
class FilePermissionGranted(Command):
    """Public: ``source`` says why; the order saga grants with ``purchase``."""

    file_id: str
    user_id: str
    access: Literal["read"] = "read"
    source: GrantSource
    granted_by: str
    granted_at: datetime
    order_id: str | None = Field(default=None, description="The order, for purchase grants.")


@event(
    "file.permission_revoked",
    topic="files",
    key="fileId",
    summary="A user may no longer read a file.",
    answers=FILES,
)
class FilePermissionRevoked(Command):
    """Public: takes effect for the next request once projected."""

    file_id: str
    user_id: str
    revoked_by: str
    revoked_at: datetime


class Variant(Payload):
    """One derived rendition of a file (e.g. ``thumbnail``)."""

    name: str
    variant_id: str
    width: int
    height: int
    size: int
    content_type: str
    sha256: str


@event(
    "file.processed",
    topic="files",
    key="fileId",
    summary="Image processing finished: variants (e.g. thumbnail) are ready, or it failed.",
)
class FileProcessed(Payload):
    """Public: the outcome of the files agent's image processing."""

    file_id: str
    owner_id: str
    status: ProcessingStatus
    error: str | None = None
    width: int | None = None
    height: int | None = None
    variants: list[Variant] = Field(default_factory=list)
    processed_at: datetime


@event(
    "file.audited",
    topic="audit",
    key=AUDIT_KEY,
    summary="A security-relevant file action: upload, download, delete, grant, revoke.",
)
class FileAudited(AuditRecord):
    """Audit record of one file action; ``subjectId`` is the grantee for grant/revoke."""

    action: Literal["upload", "download", "delete", "grant", "revoke"]
    file_id: str
    owner_id: str | None = None
