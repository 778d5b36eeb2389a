"""Streams end when the token that opened them expires or is revoked (no Kafka, no Redis)."""

from __future__ import annotations

import dataclasses

from config import Settings
from gateway.http.revocation import Revocations
from gateway.identity.auth import Principal, scopes_for
from gateway.push.hub import PushHub
from gateway.push.stream_expiry import CLOSE_SESSION_ENDED, session_end
from streams.errors import Unavailable
from tests.support.push import RecordingSink

TTL = 900
NOW = 1_000_000.0
ADA = Principal("ada", frozenset({"buyer"}), scopes_for(["buyer"]), "j1",
                issued_at_ms=int(NOW * 1000) - 5_000, expires_at=NOW + 600)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


class FakeRevocations(Revocations):
    """Not-before instants from a dict; ``down`` makes reads fail like Redis would."""

    def __init__(self) -> None:
        self.values: dict[str, int] = {}
        self.down = False
        self.reads = 0

    async def many(self, user_ids: object) -> dict[str, int]:
        self.reads += 1
        if self.down:
            raise Unavailable("down")
        return {u: self.values.get(u, 0) for u in user_ids}  # type: ignore[attr-defined]


def _hub(revocations: Revocations | None, clock: Clock) -> PushHub:
    settings = Settings(jwt_secret="x" * 40, access_token_ttl=TTL)
    return PushHub(settings, revocations=revocations, clock=clock)


def test_a_stream_lasts_as_long_as_its_credentials() -> None:
    assert session_end(ADA, NOW, TTL) == NOW + 600
    # A ticket only opens the stream: the stream gets one access-token lifetime.
    ticket = dataclasses.replace(ADA, expires_at=NOW + 60, ticket=True)
    assert session_end(ticket, NOW, TTL) == NOW + TTL


async def test_expired_streams_end_with_4401() -> None:
    clock = Clock()
    hub = _hub(None, clock)
    conn = hub.open(ADA, RecordingSink())
    await hub.check_sessions()
    assert not conn.ended
    clock.now = NOW + 601
    await hub.check_sessions()
    assert conn.close_code == CLOSE_SESSION_ENDED
    assert conn.close_reason == "token expired"
    assert hub.stats()["connections"] == 0


async def test_revoked_streams_end_and_later_tokens_stay() -> None:
    clock = Clock()
    revocations = FakeRevocations()
    hub = _hub(revocations, clock)
    old = hub.open(ADA, RecordingSink())
    newer = hub.open(dataclasses.replace(ADA, token_id="j2", issued_at_ms=int(NOW * 1000) + 10),
                     RecordingSink())
    other = hub.open(dataclasses.replace(ADA, user_id="bob"), RecordingSink())
    revocations.values["ada"] = int(NOW * 1000)  # e.g. a password reset, just now
    await hub.check_sessions()
    assert old.close_code == CLOSE_SESSION_ENDED
    assert old.close_reason == "token revoked"
    assert not newer.ended
    assert not other.ended
    assert revocations.reads == 1  # one batched read for every user with a stream


async def test_without_redis_expiry_still_applies() -> None:
    clock = Clock()
    revocations = FakeRevocations()
    revocations.down = True
    hub = _hub(revocations, clock)
    conn = hub.open(ADA, RecordingSink())
    await hub.check_sessions()
    assert not conn.ended
    clock.now = NOW + 601
    await hub.check_sessions()
    assert conn.close_reason == "token expired"
