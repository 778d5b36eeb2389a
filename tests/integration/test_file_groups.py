"""Groups for file sharing and file search by name: real worker, broker, MongoDB, gateway."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from config import Settings
from mercato.embedded import Endpoints
from stores.applied import EVENT_WINDOW
from stores.files import GROUP_GRANTS, FileRepository, GroupGrant
from stores.groups import COLLECTION as GROUPS
from stores.groups import GroupRepository
from streams.admin import ensure_topics
from tests.conftest import make_settings
from tests.support.files import Client, bearer, eventually, mongo, upload
from tests.support.http import worker_and_gateway

pytestmark = pytest.mark.integration
Json = dict[str, Any]


@pytest.fixture(scope="module")
async def env(stack: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """One isolated world for the module, with small group limits to reach."""
    settings = dataclasses.replace(
        make_settings(stack, tmp_path_factory.mktemp("groups")),
        group_max_members=2, groups_per_owner=2,
    )
    await ensure_topics(settings)
    return settings


@pytest.fixture(scope="module")
async def client(env: Settings) -> AsyncIterator[Client]:
    """A worker process and the in-process gateway."""
    async with worker_and_gateway(env) as c:
        yield c


async def _json(client: Client, method: str, path: str, headers: dict[str, str],
                expect: int, body: Json | None = None) -> Json:
    response = await client.request(method, path, json=body, headers=headers)
    assert response.status == expect, await response.text()
    return {} if expect == 204 else dict(await response.json())


async def _file(client: Client, headers: dict[str, str], name: str) -> str:
    created = await upload(client, headers, b"shared bytes\n", name=name)
    assert created.status == 201, await created.text()
    return str((await created.json())["fileId"])


async def test_a_group_grant_follows_the_current_membership(client: Client, env: Settings) -> None:
    owner, bob, eve = (bearer(env, u) for u in ("u-gowner", "u-gbob", "u-geve"))
    group = await _json(client, "POST", "/v1/groups", owner, 201, {"name": "Team"})
    assert group["ownerId"] == "u-gowner"
    assert group["members"] == ["u-gowner"]
    path = f"/v1/groups/{group['groupId']}/members"
    added = await _json(client, "POST", path, owner, 201, {"userId": "u-gbob"})
    assert added["members"] == ["u-gowner", "u-gbob"]
    assert (await _json(client, "GET", f"/v1/groups/{group['groupId']}", bob, 200)) == added
    await _json(client, "GET", f"/v1/groups/{group['groupId']}", eve, 404)
    listed = await _json(client, "GET", "/v1/groups", bob, 200)
    assert [g["groupId"] for g in listed["data"]] == [group["groupId"]]
    assert (await _json(client, "GET", "/v1/groups", eve, 200))["data"] == []

    file_id = await _file(client, owner, "plan.txt")
    grant = await _json(client, "POST", f"/v1/files/{file_id}/permissions", owner, 201,
                        {"groupId": group["groupId"], "access": "read"})
    assert grant["groupId"] == group["groupId"]
    assert grant["source"] == "owner"
    assert (await client.get(f"/v1/files/{file_id}", headers=bob)).status == 200
    content = await client.get(f"/v1/files/{file_id}/content", headers=bob)
    assert content.status == 200
    assert await content.read() == b"shared bytes\n"
    assert (await client.get(f"/v1/files/{file_id}", headers=eve)).status == 404

    async def told() -> bool:
        notes = await _json(client, "GET", "/v1/notifications", bob, 200)
        return [n["type"] for n in notes["data"]] == ["file_shared"]

    await eventually(told, "the member told of the share")  # the owner is not told
    assert (await _json(client, "GET", "/v1/notifications", owner, 200))["data"] == []
    permissions = await _json(client, "GET", f"/v1/files/{file_id}/permissions", owner, 200)
    assert [p.get("groupId") for p in permissions["data"]] == [group["groupId"]]

    # Removed: refused on the very next request, with nothing to wait for.
    await _json(client, "DELETE", f"{path}/u-gbob", owner, 204)
    assert (await client.get(f"/v1/files/{file_id}", headers=bob)).status == 404
    assert (await client.get(f"/v1/files/{file_id}/content", headers=bob)).status == 404

    # Back in, then leaving on one's own has the same effect; revoking the grant too.
    await _json(client, "POST", path, owner, 201, {"userId": "u-gbob"})
    assert (await client.get(f"/v1/files/{file_id}", headers=bob)).status == 200
    await _json(client, "DELETE", f"{path}/u-gbob", bob, 204)
    assert (await client.get(f"/v1/files/{file_id}", headers=bob)).status == 404
    await _json(client, "POST", path, owner, 201, {"userId": "u-gbob"})
    await _json(client, "DELETE", f"/v1/files/{file_id}/permissions/{group['groupId']}",
                owner, 204)
    assert (await client.get(f"/v1/files/{file_id}", headers=bob)).status == 404


async def test_group_rules_and_limits(client: Client, env: Settings) -> None:
    owner, amy, kim = (bearer(env, u) for u in ("u-lowner", "u-lamy", "u-lkim"))
    group = await _json(client, "POST", "/v1/groups", owner, 201, {"name": "Limits"})
    path = f"/v1/groups/{group['groupId']}/members"
    for user in ("u-lamy", "u-lkim"):
        await _json(client, "POST", path, owner, 201, {"userId": user})
    full = await _json(client, "POST", path, owner, 409, {"userId": "u-lzed"})
    assert full["code"] == "GROUP_FULL"
    again = await _json(client, "POST", path, owner, 409, {"userId": "u-lamy"})
    assert again["code"] == "ALREADY_MEMBER"
    assert (await _json(client, "POST", path, amy, 403, {"userId": "u-lzed"}))["code"] == (
        "FORBIDDEN")
    assert (await _json(client, "DELETE", f"{path}/u-lkim", amy, 403))["code"] == "FORBIDDEN"
    await _json(client, "DELETE", f"{path}/u-lowner", owner, 422)
    stranger = bearer(env, "u-lstranger")
    await _json(client, "POST", path, stranger, 404, {"userId": "u-lzed"})
    await _json(client, "POST", "/v1/groups/grp_missing/members", owner, 404, {"userId": "x"})
    await _json(client, "POST", "/v1/groups", owner, 422, {"name": ""})
    await _json(client, "POST", path, owner, 422, {"userId": "bad id!"})

    await _json(client, "POST", "/v1/groups", owner, 201, {"name": "Second"})
    limit = await _json(client, "POST", "/v1/groups", owner, 409, {"name": "Third"})
    assert limit["code"] == "GROUP_LIMIT_REACHED"

    # A file may be granted only to a group the granter belongs to, and to one principal.
    file_id = await _file(client, kim, "kim.txt")
    grants = f"/v1/files/{file_id}/permissions"
    other = await _json(client, "POST", "/v1/groups", stranger, 201, {"name": "Theirs"})
    await _json(client, "POST", grants, kim, 404, {"groupId": other["groupId"]})
    await _json(client, "POST", grants, kim, 422, {"groupId": group["groupId"], "userId": "u"})
    await _json(client, "POST", grants, kim, 422, {"access": "read"})
    await _json(client, "POST", grants, kim, 201, {"groupId": group["groupId"]})
    assert (await client.get(f"/v1/files/{file_id}", headers=amy)).status == 200


async def test_files_search_by_name(client: Client, env: Settings) -> None:
    me, other = bearer(env, "u-search"), bearer(env, "u-search-other")
    for name in ("Quarterly Report.pdf", "report-draft.txt", "holiday.png", "notes.txt"):
        await _file(client, me, name)
    await _file(client, other, "report.txt")

    async def names(q: str, **extra: str) -> list[str]:
        page = await _json(client, "GET", "/v1/files?" + "&".join(
            f"{k}={v}" for k, v in {"q": q, **extra}.items()), me, 200)
        return [f["name"] for f in page["data"]]

    assert await names("REPORT") == ["report-draft.txt", "Quarterly Report.pdf"]
    assert await names("port.p") == ["Quarterly Report.pdf"]
    assert await names(".*") == []  # literal text, never a pattern
    first = await _json(client, "GET", "/v1/files?q=txt&limit=1", me, 200)
    assert [f["name"] for f in first["data"]] == ["notes.txt"]
    cursor = first["pagination"]["nextCursor"]
    rest = await _json(client, "GET", f"/v1/files?q=txt&limit=1&cursor={cursor}", me, 200)
    assert [f["name"] for f in rest["data"]] == ["report-draft.txt"]
    assert (await _json(client, "GET", "/v1/files?q=", me, 422))["code"] == "VALIDATION_ERROR"
    assert (await _json(client, "GET", "/v1/files?q=" + "x" * 201, me, 422))["code"] == (
        "VALIDATION_ERROR")


async def test_guarded_documents_keep_a_window_of_event_ids(env: Settings) -> None:
    """A group's and a group grant's applied ids stay bounded however often they change."""
    mongo_client, db = mongo(env)
    groups, files = GroupRepository(db), FileRepository(db)
    at = datetime(2026, 12, 1, tzinfo=UTC)
    group_id, file_id = f"grp_{uuid.uuid4().hex}", f"f-{uuid.uuid4().hex}"
    grant = GroupGrant(file_id=file_id, group_id=group_id, access="read", source="owner",
                       granted_by="u-wowner", granted_at=at)
    try:
        await groups.create(group_id=group_id, name="Busy", owner_id="u-wowner", at=at,
                            event_id="e-created")
        last = ""
        for n in range(EVENT_WINDOW + 10):
            last = f"e-{n}"
            if n % 2:
                await groups.remove_member(group_id, "u-wbob", event_id=last)
                await files.revoke_group(file_id, group_id, at=at, event_id=last)
            else:
                await groups.add_member(group_id, "u-wbob", event_id=last)
                await files.grant_group(grant, event_id=last)
        for doc in (await db[GROUPS].find_one({"_id": group_id}),
                    await db[GROUP_GRANTS].find_one({"_id": f"{file_id}:{group_id}"})):
            assert doc is not None
            assert len(doc["events"]) == EVENT_WINDOW
            assert doc["events"][-1] == last
        # The newest events are still recognised: their redelivery changes nothing.
        assert await groups.applied(group_id, last)
        await groups.add_member(group_id, "u-wbob", event_id=last)
        await files.grant_group(grant, event_id=last)
        found = await groups.get(group_id)
        assert found is not None
        assert found.members == ("u-wowner",)
        assert await files.group_grant_of(file_id, group_id) is None
    finally:
        await mongo_client.close()
