"""Files as the gateway installs them: repositories, GridFS content, upload reservations, routes."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from gateway import keys
from gateway.domain import Domain
from gateway.files import content_routes, permission_routes, routes, upload_routes
from gateway.files.keys import FILE_CONTENT, FILE_USAGE, FILES, UPLOAD_RESERVATIONS
from gateway.files.quota import UploadReservations
from stores.file_content import ContentStore
from stores.file_usage import UsageRepository
from stores.files import FileRepository


async def files_ctx(app: web.Application) -> AsyncIterator[None]:
    """Files repositories and GridFS content over the database ``mongo_ctx`` opened."""
    db = app[keys.MONGO_DB]
    app[FILES] = FileRepository(db)
    app[FILE_USAGE] = UsageRepository(db)
    app[FILE_CONTENT] = ContentStore(db)
    settings = app[keys.SETTINGS]
    app[UPLOAD_RESERVATIONS] = UploadReservations(app[keys.REDIS], prefix=f"{settings.app_id}:")
    yield


DOMAIN = Domain(
    "files",
    contexts=(files_ctx,),
    routes=(
        upload_routes.routes,
        routes.routes,
        content_routes.routes,
        permission_routes.routes,
    ),
)
