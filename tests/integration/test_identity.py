"""Identity and sessions end to end: real broker, worker process, MongoDB, Redis, gateway."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient
from argon2 import PasswordHasher
from pymongo import AsyncMongoClient
from redis.asyncio import Redis

from config import Settings
from gateway.identity.auth import TokenService, key_id
from gateway.push.keys import PUSH_HUB
from gateway.push.stream_expiry import CLOSE_SESSION_ENDED
from mercato.embedded import Endpoints
from streams.admin import ensure_topics
from tests.conftest import TEST_JWT_SECRET, make_settings
from tests.support.files import eventually
from tests.support.http import gateway_client
from tests.support.processes import child_env, running_worker

pytestmark = pytest.mark.integration
Client = TestClient[web.Request, web.Application]
PASSWORD = "correct horse battery"
OLD_SECRET = "the-previous-secret-that-signed-older-tokens-0000"


@pytest.fixture(scope="module")
async def env(stack: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """One isolated world for the module; the previous JWT secret still verifies."""
    settings = dataclasses.replace(
        make_settings(stack, tmp_path_factory.mktemp("identity")),
        jwt_previous_secrets=OLD_SECRET,
        rate_limit_enabled=False,  # these tests sign in far more often than a person would
    )
    await ensure_topics(settings)
    return settings


@pytest.fixture(scope="module")
async def worker(env: Settings) -> AsyncIterator[None]:
    """A real ``mercato worker`` process for the module, ready to answer."""
    log = env.data_dir / "worker.log"
    async with running_worker(env, log):
        # Joining the group is not being ready: opening every table's RocksDB partitions
        # takes seconds more, and a command sent meanwhile expires (503).
        await eventually(
            lambda: _true_if(b"Worker ready" in log.read_bytes()), "the worker's tables", 60
        )
        yield


async def _true_if(condition: bool) -> bool:
    return condition


@pytest.fixture(scope="module")
async def client(env: Settings, worker: None) -> AsyncIterator[Client]:
    """The gateway, in process."""
    async with gateway_client(env) as c:
        yield c


@pytest.fixture(scope="module")
async def admin(env: Settings, client: Client) -> dict[str, Any]:
    """An admin bootstrapped with ``mercato admin create`` (a real subprocess) and signed in."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mercato", "admin", "create", "--email", "Root@Example.com",
        "--password", PASSWORD, "--name", "Root",
        env=child_env(env), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert b"admin Root@Example.com created" in out
    return await login(client, "root@example.com")


async def register(client: Client, email: str, **extra: Any) -> str:
    """Register ``email``; its user id (one retry if the worker was still rebalancing)."""
    body = {"email": email, "password": PASSWORD, "name": "Ada", **extra}
    response = await client.post("/v1/auth/register", json=body)
    if response.status == 503:
        response = await client.post("/v1/auth/register", json=body)
    assert response.status == 201, await response.text()
    user_id: str = (await response.json())["userId"]
    return user_id


async def login(client: Client, email: str, password: str = PASSWORD) -> dict[str, Any]:
    """Sign in; the token pair."""
    response = await client.post("/v1/auth/login", json={"email": email, "password": password})
    assert response.status == 200, await response.text()
    tokens: dict[str, Any] = await response.json()
    return tokens


def bearer(token: str) -> dict[str, str]:
    """An Authorization header."""
    return {"Authorization": f"Bearer {token}"}


async def status_of(client: Client, token: str, path: str = "/v1/users/me") -> int:
    """The status of a GET with ``token``."""
    response = await client.get(path, headers=bearer(token))
    return response.status


async def test_login_refresh_rotation_and_reuse_revokes_the_family(client: Client) -> None:
    await register(client, "rot@example.com")
    first = await login(client, "rot@example.com")
    assert set(first) == {"accessToken", "refreshToken", "tokenType", "expiresIn"}
    assert first["tokenType"] == "Bearer"
    assert first["expiresIn"] == 900
    assert await status_of(client, first["accessToken"]) == 200

    rotated = await client.post("/v1/auth/refresh", json={"refreshToken": first["refreshToken"]})
    assert rotated.status == 200
    second = await rotated.json()
    assert second["refreshToken"] != first["refreshToken"]
    assert await status_of(client, second["accessToken"]) == 200

    replay = await client.post("/v1/auth/refresh", json={"refreshToken": first["refreshToken"]})
    assert replay.status == 401
    assert (await replay.json())["code"] == "REFRESH_TOKEN_REUSED"
    # The theft response: the legitimately rotated token dies with its family.
    after = await client.post("/v1/auth/refresh", json={"refreshToken": second["refreshToken"]})
    assert after.status == 401
    assert (await after.json())["code"] == "INVALID_REFRESH_TOKEN"

    garbage = await client.post("/v1/auth/refresh", json={"refreshToken": "nope.nope"})
    assert garbage.status == 401


async def test_a_session_ends_at_its_maximum_age_however_often_refreshed(
    client: Client, env: Settings
) -> None:
    await register(client, "longlived@example.com")
    pair = await login(client, "longlived@example.com")
    refreshed = await client.post("/v1/auth/refresh", json={"refreshToken": pair["refreshToken"]})
    assert refreshed.status == 200
    token = (await refreshed.json())["refreshToken"]
    # Signed in longer ago than the maximum age allows (rather than waiting 30 days).
    family = f"{env.app_id}:auth:family:{token.partition('.')[0]}"
    redis = Redis.from_url(env.redis_url)
    try:
        await redis.hset(family, "createdAt", int(time.time()) - env.session_max_age - 1)
    finally:
        await redis.aclose()
    expired = await client.post("/v1/auth/refresh", json={"refreshToken": token})
    assert expired.status == 401
    assert (await expired.json())["code"] == "SESSION_EXPIRED"
    again = await client.post("/v1/auth/refresh", json={"refreshToken": token})
    assert (await again.json())["code"] == "INVALID_REFRESH_TOKEN"


async def test_logout_revokes_the_session_only(client: Client) -> None:
    await register(client, "out@example.com")
    phone, laptop = await login(client, "out@example.com"), await login(client, "out@example.com")
    out = await client.post("/v1/auth/logout", json={"refreshToken": phone["refreshToken"]})
    assert out.status == 204
    again = await client.post("/v1/auth/logout", json={"refreshToken": phone["refreshToken"]})
    assert again.status == 204
    dead = await client.post("/v1/auth/refresh", json={"refreshToken": phone["refreshToken"]})
    assert dead.status == 401
    alive = await client.post("/v1/auth/refresh", json={"refreshToken": laptop["refreshToken"]})
    assert alive.status == 200


async def test_concurrent_refreshes_with_one_token_exactly_one_wins(client: Client) -> None:
    await register(client, "race-refresh@example.com")
    pair = await login(client, "race-refresh@example.com")

    async def attempt() -> int:
        body = {"refreshToken": pair["refreshToken"]}
        response = await client.post("/v1/auth/refresh", json=body)
        return response.status

    statuses = await asyncio.gather(*(attempt() for _ in range(8)))
    assert sorted(statuses) == [200] + [401] * 7


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()


async def test_forged_and_rotated_tokens(client: Client, env: Settings) -> None:
    user_id = await register(client, "forge@example.com")
    now = int(time.time())
    claims = {"sub": user_id, "roles": ["buyer"], "scope": "profile", "iss": "mercato",
              "aud": "mercato-api", "iat": now, "exp": now + 60, "jti": "j"}
    current = {"kid": key_id(TEST_JWT_SECRET)}

    def sign(secret: str = TEST_JWT_SECRET, headers: dict[str, Any] | None = None,
             **override: Any) -> str:
        return jwt.encode({**claims, **override}, secret, algorithm="HS256",
                          headers=current if headers is None else headers)

    assert await status_of(client, sign()) == 200
    # Key rotation: a token the previous secret signed still verifies by its kid.
    old = TokenService(dataclasses.replace(env, jwt_secret=OLD_SECRET, jwt_previous_secrets=""))
    assert await status_of(client, old.issue_access(user_id, ["buyer"])) == 200
    header, _payload, signature = sign().split(".")
    forged = {
        "expired": sign(iat=now - 120, exp=now - 60),
        "tampered": f"{header}.{_b64({**claims, 'roles': ['admin']})}.{signature}",
        "wrong audience": sign(aud="someone-else"),
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.",
        "wrong key": sign("an-attacker-secret-that-is-long-enough-000000000", headers={}),
        "wrong key, our kid": sign("an-attacker-secret-that-is-long-enough-000000000"),
        "unknown kid": sign(headers={"kid": "retired-long-ago"}),
        "old secret, current kid": sign(OLD_SECRET),
    }
    for name, token in forged.items():
        response = await client.get("/v1/users/me", headers=bearer(token))
        assert response.status == 401, name
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_profiles_are_private_and_patchable(client: Client) -> None:
    mine = await register(client, "me@example.com")
    other = await register(client, "other@example.com")
    token = (await login(client, "me@example.com"))["accessToken"]

    assert await status_of(client, token, f"/v1/users/{other}") == 404
    assert await status_of(client, token, "/v1/users/does-not-exist") == 404
    assert await status_of(client, token, f"/v1/users/{mine}") == 200

    address = {"line1": "1 Main St", "city": "Berlin", "postalCode": "10115", "country": "DE"}
    patched = await client.patch(
        "/v1/users/me", json={"name": "Ada L.", "address": address}, headers=bearer(token)
    )
    assert patched.status == 200, await patched.text()
    profile = await patched.json()
    assert (profile["name"], profile["address"], profile["userId"]) == ("Ada L.", address, mine)
    assert set(profile) == {"userId", "email", "name", "roles", "address", "createdAt"}

    cleared = await client.patch("/v1/users/me", json={"address": None}, headers=bearer(token))
    assert cleared.status == 200
    assert "address" not in await cleared.json()
    me = await (await client.get("/v1/users/me", headers=bearer(token))).json()
    assert me["name"] == "Ada L."
    assert "address" not in me

    empty = await client.patch("/v1/users/me", json={}, headers=bearer(token))
    assert empty.status == 422
    bad = await client.patch(
        "/v1/users/me", json={"address": {**address, "country": "Germany"}}, headers=bearer(token)
    )
    assert bad.status == 422
    assert (await client.patch("/v1/users/me", json={"name": "x"})).status == 401


async def test_admin_endpoints_refuse_buyers_and_anonymous(
    client: Client, admin: dict[str, Any]
) -> None:
    victim = await register(client, "victim@example.com")
    buyer = (await login(client, "victim@example.com"))["accessToken"]
    put = await client.put(
        f"/v1/users/{victim}/roles", json={"roles": ["admin"]}, headers=bearer(buyer)
    )
    assert put.status == 403
    assert await status_of(client, buyer, "/v1/audit/logs") == 403
    anonymous = await client.get("/v1/audit/logs")
    assert anonymous.status == 401
    unknown = await client.put(
        "/v1/users/nobody/roles", json={"roles": ["seller"]}, headers=bearer(admin["accessToken"])
    )
    assert unknown.status == 404


async def test_role_change_revokes_old_tokens_and_refresh_brings_new_roles(
    client: Client, admin: dict[str, Any]
) -> None:
    user_id = await register(client, "promote@example.com")
    pair = await login(client, "promote@example.com")
    assert await status_of(client, pair["accessToken"]) == 200
    assert await status_of(client, admin["accessToken"], f"/v1/users/{user_id}") == 200

    put = await client.put(
        f"/v1/users/{user_id}/roles",
        json={"roles": ["seller", "buyer"]},
        headers=bearer(admin["accessToken"]),
    )
    assert put.status == 200, await put.text()
    assert (await put.json())["roles"] == ["buyer", "seller"]

    revoked = await client.get("/v1/users/me", headers=bearer(pair["accessToken"]))
    assert revoked.status == 401
    assert (await revoked.json())["code"] == "TOKEN_REVOKED"
    refreshed = await client.post("/v1/auth/refresh", json={"refreshToken": pair["refreshToken"]})
    assert refreshed.status == 200
    token = (await refreshed.json())["accessToken"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["roles"] == ["buyer", "seller"]
    assert "products:write" in claims["scope"].split()
    assert await status_of(client, token) == 200


async def test_streams_opened_with_a_revoked_token_are_closed(
    client: Client, admin: dict[str, Any]
) -> None:
    user_id = await register(client, "streamer@example.com")
    pair = await login(client, "streamer@example.com")
    async with client.ws_connect("/v1/ws", headers=bearer(pair["accessToken"])) as ws:
        await ws.send_json({"type": "subscribe", "channel": f"user:{user_id}"})
        assert (await ws.receive_json(timeout=5))["type"] == "subscribed"
        put = await client.put(
            f"/v1/users/{user_id}/roles", json={"roles": ["seller", "buyer"]},
            headers=bearer(admin["accessToken"]),
        )
        assert put.status == 200, await put.text()
        # The hub checks every few seconds; run the check now instead of waiting for it.
        assert client.app is not None
        await client.app[PUSH_HUB].check_sessions()
        closing = await ws.receive(timeout=5)
        while closing.type is WSMsgType.TEXT:  # e.g. the roles change itself, pushed first
            closing = await ws.receive(timeout=5)
        assert closing.type is WSMsgType.CLOSE
        assert closing.data == CLOSE_SESSION_ENDED
        assert closing.extra == "token revoked"


async def _outbox_token(env: Settings, user_id: str, seen: int) -> str | None:
    path = env.data_dir / "outbox" / "messages.jsonl"
    if not path.exists():
        return None
    mine = [m for m in map(orjson.loads, path.read_bytes().splitlines()) if m["userId"] == user_id]
    if len(mine) <= seen:
        return None
    token: str = mine[-1]["params"]["token"]
    return token


async def test_password_reset_end_to_end(client: Client, env: Settings) -> None:
    user_id = await register(client, "forgot@example.com")
    pair = await login(client, "forgot@example.com")
    second_gateway_token = (await login(client, "forgot@example.com"))["accessToken"]

    async with gateway_client(env) as other:
        # The other instance caches "not revoked" for this user now...
        assert await status_of(other, second_gateway_token) == 200

        for email in ("Forgot@Example.com", "nobody-here@example.com"):
            asked = await client.post("/v1/auth/password/reset", json={"email": email})
            assert asked.status == 202
            assert await asked.read() == b""
        token = await eventually(lambda: _outbox_token(env, user_id, 0), "the reset email")

        confirm = await client.post(
            "/v1/auth/password/reset/confirm",
            json={"token": token, "newPassword": "a brand new passphrase"},
        )
        assert confirm.status == 204, await confirm.text()
        again = await client.post(
            "/v1/auth/password/reset/confirm",
            json={"token": token, "newPassword": "yet another passphrase"},
        )
        assert again.status == 400
        assert (await again.json())["code"] == "INVALID_RESET_TOKEN"

        # Every session is gone; access tokens die at once here, within the cache bound there.
        dead = await client.post("/v1/auth/refresh", json={"refreshToken": pair["refreshToken"]})
        assert dead.status == 401
        assert await status_of(client, pair["accessToken"]) == 401
        await asyncio.sleep(1.1)
        assert await status_of(other, second_gateway_token) == 401

    wrong = await client.post(
        "/v1/auth/login", json={"email": "forgot@example.com", "password": PASSWORD}
    )
    assert wrong.status == 401
    fresh = await login(client, "forgot@example.com", "a brand new passphrase")
    assert await status_of(client, fresh["accessToken"]) == 200

    async def notifications() -> list[dict[str, Any]] | None:
        got = await client.get("/v1/notifications", headers=bearer(fresh["accessToken"]))
        data: list[dict[str, Any]] = (await got.json())["data"]
        return data or None

    [note] = await eventually(notifications, "the in-app notification")
    assert note["type"] == "password_reset"
    assert note["read"] is False
    assert token not in orjson.dumps(note).decode()


async def test_notifications_read_delete_and_ownership(client: Client, env: Settings) -> None:
    user_id = await register(client, "notes@example.com")
    token = (await login(client, "notes@example.com"))["accessToken"]
    stranger = await register(client, "stranger@example.com")
    stranger_token = (await login(client, "stranger@example.com"))["accessToken"]
    for _ in range(3):
        response = await client.post(
            "/v1/auth/password/reset", json={"email": "notes@example.com"}
        )
        assert response.status == 202

    async def three() -> list[dict[str, Any]] | None:
        got = await client.get("/v1/notifications?limit=2", headers=bearer(token))
        body: dict[str, Any] = await got.json()
        if not body["pagination"]["hasMore"]:
            return None
        rest = await client.get(
            f"/v1/notifications?limit=2&cursor={body['pagination']['nextCursor']}",
            headers=bearer(token),
        )
        tail: dict[str, Any] = await rest.json()
        assert tail["pagination"] == {"limit": 2, "hasMore": False, "nextCursor": None}
        out: list[dict[str, Any]] = body["data"] + tail["data"]
        return out if len(out) == 3 else None

    notes = await eventually(three, "three notifications")
    assert len({n["notificationId"] for n in notes}) == 3
    stamps = [n["createdAt"] for n in notes]
    assert stamps == sorted(stamps, reverse=True)
    first, second = notes[0]["notificationId"], notes[1]["notificationId"]

    theirs = await client.post(f"/v1/notifications/{first}/read", headers=bearer(stranger_token))
    assert theirs.status == 404
    read = await client.post(f"/v1/notifications/{first}/read", headers=bearer(token))
    assert read.status == 204
    unread = await (await client.get("/v1/notifications?unread=true", headers=bearer(token))).json()
    assert first not in {n["notificationId"] for n in unread["data"]}
    assert len(unread["data"]) == 2

    assert (await client.delete(f"/v1/notifications/{second}", headers=bearer(stranger_token))
            ).status == 404
    assert (await client.delete(f"/v1/notifications/{second}", headers=bearer(token))).status == 204
    assert (await client.delete(f"/v1/notifications/{second}", headers=bearer(token))).status == 404
    left = await (await client.get("/v1/notifications", headers=bearer(token))).json()
    assert second not in {n["notificationId"] for n in left["data"]}
    assert stranger != user_id

    bad_cursor = await client.get("/v1/notifications?cursor=!!!", headers=bearer(token))
    assert bad_cursor.status == 400
    assert (await bad_cursor.json())["code"] == "INVALID_CURSOR"
    bad_limit = await client.get("/v1/notifications?limit=1000", headers=bearer(token))
    assert bad_limit.status == 422
    assert (await bad_limit.json())["errors"][0]["field"] == "limit"


async def test_audit_log_records_flows_with_filters_and_pages(
    client: Client, admin: dict[str, Any]
) -> None:
    user_id = await register(client, "audited@example.com")
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
    pair = await login(client, "audited@example.com")
    await client.post("/v1/auth/login", json={"email": "audited@example.com", "password": "nope1"})
    await client.post("/v1/auth/logout", json={"refreshToken": pair["refreshToken"]})
    headers = bearer(admin["accessToken"])

    async def actions() -> set[str] | None:
        got = await client.get(f"/v1/audit/logs?actor={user_id}&limit=100", headers=headers)
        assert got.status == 200, await got.text()
        found = {e["action"] for e in (await got.json())["data"]}
        return found if {"auth.login_succeeded", "auth.logged_out"} <= found else None

    await eventually(actions, "the user's audit records")

    async def failures() -> list[dict[str, Any]] | None:
        got = await client.get(
            f"/v1/audit/logs?action=auth.login_failed&from={started}", headers=headers
        )
        data: list[dict[str, Any]] = (await got.json())["data"]
        return [e for e in data if e["details"]["emailMasked"] == "a***@example.com"] or None

    [failed] = await eventually(failures, "the failed login")
    assert failed["actorId"] is None
    assert failed["ip"] == "127.0.0.1"
    assert failed["requestId"]
    assert "nope1" not in orjson.dumps(failed).decode()
    assert "audited@example.com" not in orjson.dumps(failed).decode()

    seen: list[str] = []
    cursor = ""
    for _ in range(50):
        page = await (await client.get(f"/v1/audit/logs?limit=2{cursor}", headers=headers)).json()
        seen.extend(e["id"] for e in page["data"])
        if not page["pagination"]["hasMore"]:
            break
        cursor = f"&cursor={page['pagination']['nextCursor']}"
    everything = await (await client.get("/v1/audit/logs?limit=100", headers=headers)).json()
    assert len(seen) == len(set(seen)) >= 3
    assert seen == [e["id"] for e in everything["data"]][: len(seen)]

    future = await (await client.get("/v1/audit/logs?from=2999-01-01T00:00:00Z", headers=headers)
                    ).json()
    assert future["data"] == []
    bad = await client.get("/v1/audit/logs?to=yesterday", headers=headers)
    assert bad.status == 422


async def test_outdated_hash_is_rehashed_on_login(client: Client, env: Settings) -> None:
    user_id = await register(client, "legacy@example.com")
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(env.mongo_url)
    try:
        users = mongo[env.mongo_database]["users"]
        await users.update_one({"_id": user_id}, {"$set": {"passwordHash": weak}})
        await login(client, "legacy@example.com")

        async def rehashed() -> str | None:
            doc = await users.find_one({"_id": user_id})
            assert doc is not None
            current: str = doc["passwordHash"]
            return current if current != weak else None

        new_hash = await eventually(rehashed, "the rehash")
        assert "m=19456,t=2,p=1" in new_hash
        await login(client, "legacy@example.com")
    finally:
        await mongo.close()


async def test_admin_create_reports_a_taken_email_and_a_missing_worker(
    env: Settings, admin: dict[str, Any], stack: Endpoints, tmp_path: Path
) -> None:
    taken = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mercato", "admin", "create", "--email", "root@example.com",
        "--password", PASSWORD, env=child_env(env),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    _, err = await taken.communicate()
    assert taken.returncode == 1
    assert b"already exists" in err

    lonely = dataclasses.replace(make_settings(stack, tmp_path), command_timeout=1.5)
    await ensure_topics(lonely)
    nobody = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mercato", "admin", "create", "--email", "x@example.com",
        "--password", PASSWORD, env=child_env(lonely),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    _, err = await nobody.communicate()
    assert nobody.returncode == 1
    assert b"no worker answered; is `mercato worker` running?" in err
