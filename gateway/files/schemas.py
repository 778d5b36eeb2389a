"""Request and response bodies of the /v1/files endpoints (for validation and OpenAPI)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

from gateway.http.responses import Out, PaginationOut
from gateway.http.validation import Body

# As gateway.files.uploads reads it.
ProductId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]
PrincipalId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]


class UploadForm(Body):
    """POST /v1/files as multipart/form-data."""

    file: bytes = Field(description="The content; type and name are derived server-side.")
    product_id: ProductId | SkipJsonSchema[None] = Field(
        default=None, description="Link to a product the caller sells (sellers and admins)."
    )


class UploadOut(Out):
    """What an upload answers."""

    file_id: str
    name: str
    size: int
    content_type: str
    sha256: str
    created_at: str


class VariantOut(Out):
    """One derived rendition of an image."""

    name: str
    variant_id: str
    width: int
    height: int
    size: int
    content_type: str


class FileOut(UploadOut):
    """A file's metadata."""

    owner_id: str
    product_id: str | None = None
    processing: dict[str, str] = Field(
        description="{status: none|pending|done|failed, error?, processedAt?}"
    )
    image: dict[str, int] | None = Field(default=None, description="{width, height}")
    variants: list[VariantOut]


# The same block under the name (and description) /openapi.json already publishes for files.
class PageOut(PaginationOut):
    """Cursor pagination state."""


class FileListOut(Out):
    """A page of the caller's files, newest first."""

    data: list[FileOut]
    pagination: PageOut


class VariantsOut(Out):
    """A file's variants."""

    data: list[VariantOut]


class PermissionBody(Body):
    """POST /v1/files/{id}/permissions: exactly one of ``userId`` and ``groupId``."""

    user_id: PrincipalId | SkipJsonSchema[None] = Field(default=None, description="A user.")
    group_id: PrincipalId | SkipJsonSchema[None] = Field(
        default=None, description="A group you belong to: its members may read while members."
    )
    access: Literal["read"] = "read"


class PermissionOut(Out):
    """One read grant, to a user or (``groupId``) to a group."""

    file_id: str
    user_id: str | None = None
    group_id: str | None = None
    access: str
    source: Literal["owner", "admin", "purchase"]
    granted_by: str
    granted_at: str


class PermissionsOut(Out):
    """A file's active grants."""

    data: list[PermissionOut]
