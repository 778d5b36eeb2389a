"""Files end to end: real worker process, broker, MongoDB/GridFS and an in-process gateway."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from gridfs import AsyncGridFSBucket
from PIL import Image
from pymongo.asynchronous.database import AsyncDatabase

from agents.files.decider import thumbnail_id
from config import Settings
from mercato.embedded import Endpoints
from streams.admin import ensure_topics
from streams.envelope import new_event, utcnow
from streams.events.files import FilePermissionGranted
from tests.conftest import make_settings
from tests.integration.test_registration import _read_all
from tests.support.files import Client, bearer, chunk_owners, eventually, mongo, png, upload
from tests.support.files import png_claiming as bomb
from tests.support.http import worker_and_gateway

pytestmark = pytest.mark.integration
Json = dict[str, Any]


@pytest.fixture(scope="module")
async def env(stack: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """One isolated world for the module."""
    settings = make_settings(stack, tmp_path_factory.mktemp("files"))
    await ensure_topics(settings)
    return settings


@pytest.fixture(scope="module")
async def client(env: Settings) -> AsyncIterator[Client]:
    """A worker process and the in-process gateway."""
    async with worker_and_gateway(env) as c:
        yield c


@pytest.fixture(scope="module")
async def db(env: Settings) -> AsyncIterator[AsyncDatabase[Json]]:
    """Direct access to the module's database, to inspect GridFS."""
    mongo_client, database = mongo(env)
    yield database
    await mongo_client.close()


async def test_upload_metadata_download_round_trip(
    client: Client, env: Settings, db: AsyncDatabase[Json]
) -> None:
    owner = bearer(env, "u-ada")
    data = b"hello, files\n" * 1000
    created = await upload(client, owner, data, name="C:\\fakepath\\../re\u202eport<1>.txt",
                           declared_type="image/png")
    assert created.status == 201, await created.text()
    body = await created.json()
    file_id = body["fileId"]
    assert created.headers["Location"] == f"/v1/files/{file_id}"
    assert body["name"] == "report_1_.txt"
    assert body["size"] == len(data)
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["contentType"] == "text/plain; charset=utf-8"  # sniffed, not the client's

    meta = await client.get(f"/v1/files/{file_id}", headers=owner)
    assert meta.status == 200
    assert (await meta.json())["ownerId"] == "u-ada"

    got = await client.get(f"/v1/files/{file_id}/content", headers=owner)
    assert got.status == 200
    content = await got.read()
    assert hashlib.sha256(content).hexdigest() == body["sha256"]
    assert got.headers["ETag"] == f'"{body["sha256"]}"'
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert got.headers["Content-Type"].startswith("text/plain")
    assert got.headers["Content-Disposition"] == (
        "attachment; filename=\"report_1_.txt\"; filename*=UTF-8''report_1_.txt"
    )
    # What we write is plain GridFS: pymongo's own bucket reads it back.
    stream = await AsyncGridFSBucket(db).open_download_stream(file_id)
    assert await stream.read() == data

    listed = await client.get("/v1/files?limit=1", headers=owner)
    page = await listed.json()
    assert [f["fileId"] for f in page["data"]] == [file_id]


async def test_listing_pages_through_own_files_only(client: Client, env: Settings) -> None:
    mine = bearer(env, "u-lister")
    ids = [(await (await upload(client, mine, b"x%d" % i)).json())["fileId"] for i in range(3)]
    await upload(client, bearer(env, "u-other"), b"not yours")
    seen: list[str] = []
    url = "/v1/files?limit=2"
    while True:
        page = await (await client.get(url, headers=mine)).json()
        seen += [f["fileId"] for f in page["data"]]
        if not page["pagination"]["hasMore"]:
            break
        url = f"/v1/files?limit=2&cursor={page['pagination']['nextCursor']}"
    assert seen == ids[::-1]
    bad = await client.get("/v1/files?cursor=bm9wZQ", headers=mine)
    assert bad.status == 400


async def test_ranges_and_conditional_requests(client: Client, env: Settings) -> None:
    owner = bearer(env, "u-ranges")
    data = os.urandom(1000)
    file_id = (await (await upload(client, owner, data)).json())["fileId"]
    url = f"/v1/files/{file_id}/content"

    async def get(**headers: str) -> tuple[int, bytes, Any]:
        response = await client.get(url, headers={**owner, **headers})
        return response.status, await response.read(), response.headers

    status, body, headers = await get(Range="bytes=0-9")
    assert (status, body, headers["Content-Range"]) == (206, data[:10], "bytes 0-9/1000")
    status, body, headers = await get(Range="bytes=-100")
    assert (status, body, headers["Content-Range"]) == (206, data[-100:], "bytes 900-999/1000")
    status, body, _ = await get(Range="bytes=990-")
    assert (status, body) == (206, data[990:])
    status, body, headers = await get(Range="bytes=1000-")
    assert status == 416
    assert headers["Content-Range"] == "bytes */1000"
    assert orjson.loads(body)["code"] == "RANGE_NOT_SATISFIABLE"
    status, body, _ = await get(Range="bytes=0-1,5-6")  # several ranges: whole file, 200
    assert (status, body) == (200, data)
    etag = headers_etag = (await client.get(url, headers=owner)).headers["ETag"]
    status, body, headers = await get(**{"If-None-Match": etag})
    assert (status, body, headers["ETag"]) == (304, b"", headers_etag)
    status, body, _ = await get(Range="bytes=0-9", **{"If-Range": '"stale"'})
    assert (status, body) == (200, data)


async def test_stranger_grant_revoke_and_purchase(client: Client, env: Settings) -> None:
    owner, stranger = bearer(env, "u-own"), bearer(env, "u-stranger")
    file_id = (await (await upload(client, owner, b"secret plans")).json())["fileId"]
    for path in ("", "/content", "/variants", "/permissions"):
        assert (await client.get(f"/v1/files/{file_id}{path}", headers=stranger)).status == 404

    granted = await client.post(f"/v1/files/{file_id}/permissions", headers=owner,
                                json={"userId": "u-stranger", "access": "read"})
    assert granted.status == 201, await granted.text()
    assert (await granted.json())["source"] == "owner"
    assert (await client.get(f"/v1/files/{file_id}/content", headers=stranger)).status == 200
    # A reader may not manage the file.
    assert (await client.delete(f"/v1/files/{file_id}", headers=stranger)).status == 403
    assert (await client.get(f"/v1/files/{file_id}/permissions", headers=stranger)).status == 403
    listed = await (await client.get(f"/v1/files/{file_id}/permissions", headers=owner)).json()
    assert [g["userId"] for g in listed["data"]] == ["u-stranger"]

    revoked = await client.delete(f"/v1/files/{file_id}/permissions/u-stranger", headers=owner)
    assert revoked.status == 204
    assert (await client.get(f"/v1/files/{file_id}/content", headers=stranger)).status == 404
    admin = bearer(env, "u-admin", "admin")
    assert (await client.get(f"/v1/files/{file_id}/content", headers=admin)).status == 200

    # The order saga's delivery step will publish exactly this; no gateway waits for it.
    purchase = new_event(
        FilePermissionGranted(file_id=file_id, user_id="u-buyer", source="purchase",
                              granted_by="u-own", granted_at=utcnow(), order_id="o-1"),
        key=file_id, source="agents.orders",
    )
    producer = AIOKafkaProducer(bootstrap_servers=env.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(env.topic("files"), key=file_id.encode(),
                                     value=purchase.encode())
    finally:
        await producer.stop()
    buyer = bearer(env, "u-buyer")

    async def buyer_reads() -> bool:
        response = await client.get(f"/v1/files/{file_id}/content", headers=buyer)
        return response.status == 200

    await eventually(buyer_reads, what="the purchase grant")


async def test_images_get_a_thumbnail_and_corrupt_ones_a_recorded_error(
    client: Client, env: Settings
) -> None:
    owner = bearer(env, "u-artist")
    ids = {}
    for label, data in (("real", png(600, 400)), ("corrupt", b"\x89PNG\r\n\x1a\n" + b"junk" * 50),
                        ("bomb", bomb(100_000, 100_000))):
        response = await upload(client, owner, data, name=f"{label}.png")
        assert response.status == 201
        assert (await response.json())["contentType"] == "image/png"
        ids[label] = (await response.json())["fileId"]

    async def processed(file_id: str) -> Json | None:
        meta: Json = await (await client.get(f"/v1/files/{file_id}", headers=owner)).json()
        return meta if meta["processing"]["status"] in ("done", "failed") else None

    real = await eventually(lambda: processed(ids["real"]), what="the thumbnail")
    assert real["processing"]["status"] == "done"
    assert real["image"] == {"width": 600, "height": 400}
    variants = await (await client.get(f"/v1/files/{ids['real']}/variants", headers=owner)).json()
    [thumb] = variants["data"]
    assert (thumb["name"], thumb["width"], thumb["height"]) == ("thumbnail", 256, 171)
    assert thumb["variantId"] == thumbnail_id(ids["real"])
    got = await client.get(f"/v1/files/{ids['real']}/variants/thumbnail/content", headers=owner)
    assert got.status == 200
    assert Image.open(io.BytesIO(await got.read())).size == (256, 171)

    corrupt = await eventually(lambda: processed(ids["corrupt"]), what="the corrupt image")
    assert corrupt["processing"]["status"] == "failed"
    assert corrupt["processing"]["error"]
    assert corrupt["variants"] == []
    bombed = await eventually(lambda: processed(ids["bomb"]), what="the bomb")
    assert bombed["processing"]["status"] == "failed"
    assert "DecompressionBomb" in bombed["processing"]["error"]


async def test_delete_removes_metadata_access_and_content(
    client: Client, env: Settings, db: AsyncDatabase[Json]
) -> None:
    owner = bearer(env, "u-deleter")
    file_id = (await (await upload(client, owner, png(300, 300), name="a.png")).json())["fileId"]
    url = f"/v1/files/{file_id}"

    async def thumbnailed() -> bool:
        meta = await (await client.get(url, headers=owner)).json()
        return bool(meta["variants"])

    await eventually(thumbnailed, what="the thumbnail")
    assert {file_id, thumbnail_id(file_id)} <= await chunk_owners(db)
    usage = await db["file_usage"].find_one({"_id": "u-deleter"})
    assert usage is not None
    assert usage["bytes"] > 0

    assert (await client.delete(url, headers=owner)).status == 204
    for path in ("", "/content", "/variants"):
        assert (await client.get(url + path, headers=owner)).status == 404
    assert (await client.delete(url, headers=owner)).status == 404
    owners = await chunk_owners(db)
    assert file_id not in owners
    assert thumbnail_id(file_id) not in owners
    assert await db["fs.files"].count_documents({"_id": file_id}) == 0
    usage = await db["file_usage"].find_one({"_id": "u-deleter"})
    assert usage is not None
    assert usage["bytes"] == 0


async def test_file_events_pushes_and_audit_records(client: Client, env: Settings) -> None:
    owner = bearer(env, "u-evented")
    file_id = (await (await upload(client, owner, png(40, 40), name="e.png")).json())["fileId"]
    # Read to the end: a download still streaming when the file is deleted below is cut
    # short and announces nothing (on a loaded machine it once was).
    downloaded = await client.get(f"/v1/files/{file_id}/content", headers=owner)
    assert downloaded.status == 200
    await downloaded.read()

    async def processed() -> bool:
        meta = await (await client.get(f"/v1/files/{file_id}", headers=owner)).json()
        return bool(meta["variants"])

    await eventually(processed, what="processing")
    assert (await client.delete(f"/v1/files/{file_id}", headers=owner)).status == 204

    def types(records: list[Any], key: bytes) -> list[str]:
        return [orjson.loads(v)["type"] for k, v, _ in records if k == key]

    # Each of these is written by another process after the answer above (the files and
    # audit agents): wait until all of it is there, then check it is exactly that.
    wanted = {"file.downloaded", "file.processed", "file.deleted"}

    async def on_files() -> list[str] | None:
        seen = types(await _read_all(env, env.topic("files")), file_id.encode())
        return seen if wanted <= set(seen) else None

    assert (await eventually(on_files, what="the file's events"))[0] == "file.uploaded"

    async def pushed() -> list[str] | None:
        seen = types(await _read_all(env, env.topic("push")), b"user:u-evented")
        return seen if "file.deleted" in seen else None

    assert await eventually(pushed, what="the pushes") == [
        "file.uploaded", "file.processed", "file.deleted"]

    async def audited() -> list[str] | None:
        seen = sorted(orjson.loads(v)["data"]["action"] for k, v, _ in
                      await _read_all(env, env.topic("audit")) if k == b"u-evented"
                      and orjson.loads(v)["data"].get("fileId") == file_id)
        return seen if len(seen) >= 3 else None

    assert await eventually(audited, what="the audit records") == ["delete", "download", "upload"]
