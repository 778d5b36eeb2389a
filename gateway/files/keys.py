"""State of the files domain."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from gateway.files.access import ProductOwnership
    from gateway.files.quota import UploadReservations
    from stores.file_content import ContentStore
    from stores.file_usage import UsageRepository
    from stores.files import FileRepository

FILES: web.AppKey[FileRepository] = web.AppKey("files")
FILE_USAGE: web.AppKey[UsageRepository] = web.AppKey("file_usage")
FILE_CONTENT: web.AppKey[ContentStore] = web.AppKey("file_content")
# Quota held by uploads in flight (Redis), so concurrent uploads cannot overshoot it.
UPLOAD_RESERVATIONS: web.AppKey[UploadReservations] = web.AppKey("upload_reservations")
# Whether a caller may link files to a product: gateway.catalog.writes.SellerOwnsProduct.
PRODUCT_OWNERSHIP: web.AppKey[ProductOwnership] = web.AppKey("product_ownership")
