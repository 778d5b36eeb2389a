"""Webhooks' pure rules: signing, backoff, the SSRF guard, subscriptions, the delivery state."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import ipaddress
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from agents.webhooks import addresses, backoff, catalogue, signing
from agents.webhooks.deliveries import DeliveriesDecider, delivery_key, endpoint_key
from agents.webhooks.dispatcher import Dispatcher
from config import Settings
from stores.webhooks import DeliveryLog, Endpoint, WebhookRepository
from streams.envelope import new_event
from streams.errors import InvalidInput
from streams.events.webhooks import (
    DeliveryAttempted,
    DeliveryRequested,
    RetryRequested,
    WebhookChanged,
)
from tests.support.recording import RecordingEffects

AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


# Signing (Standard Webhooks).

def test_signature_matches_the_standard_webhooks_reference_vector() -> None:
    # The test vector of the Standard Webhooks reference libraries (and Svix's).
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    signed = signing.signature(
        secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
    )
    assert signed == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_a_new_secret_is_32_random_bytes_after_whsec() -> None:
    secret = signing.new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert signing.new_secret() != secret


def test_headers_carry_the_id_the_time_and_the_signature() -> None:
    secret = signing.new_secret()
    headers = signing.headers(secret, "evt-1", 1700000000, b"{}")
    assert headers["webhook-id"] == "evt-1"
    assert headers["webhook-timestamp"] == "1700000000"
    assert headers["webhook-signature"] == signing.signature(secret, "evt-1", 1700000000, b"{}")


@pytest.mark.parametrize("secret", ["MfKQ9r8GKYqrTwjU", "whsec_not base64!"])
def test_a_secret_that_is_not_whsec_base64_is_refused(secret: str) -> None:
    with pytest.raises(ValueError, match="webhook secret"):
        signing.secret_key(secret)


# Backoff.

def test_each_retry_waits_at_most_its_schedule_entry_and_none_after_the_last() -> None:
    schedule = (5.0, 30.0, 120.0)
    rng = random.Random(7)
    for failed, cap in enumerate(schedule, start=1):
        delays = [backoff.next_delay(failed, schedule, rng=rng) for _ in range(200)]
        assert all(d is not None and 0.0 <= d <= cap for d in delays)
        assert max(d for d in delays if d is not None) > cap / 2  # full jitter spreads them
    assert backoff.next_delay(len(schedule) + 1, schedule) is None
    assert backoff.max_attempts(schedule) == 4


def test_the_default_schedule_grows_and_is_read_from_settings() -> None:
    from config import Settings

    delays = Settings(jwt_secret="x" * 48).webhook_retry_delays
    assert delays == (5.0, 30.0, 120.0, 600.0, 3600.0, 21600.0, 86400.0)
    assert list(delays) == sorted(delays)


def test_a_bad_schedule_is_a_configuration_error() -> None:
    from config import ConfigError, Settings

    with pytest.raises(ConfigError, match="WEBHOOK_RETRY_SCHEDULE"):
        Settings(jwt_secret="x" * 48, webhook_retry_schedule="5,soon")


# The SSRF guard.

@pytest.mark.parametrize(("address", "reason"), [
    ("127.0.0.1", "loopback"),
    ("10.0.0.8", "private"),
    ("172.16.3.4", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"),  # cloud metadata
    ("0.0.0.0", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("100.64.0.1", "not public"),  # carrier-grade NAT
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fe80::1", "link-local"),
    ("fc00::1", "private"),
    ("ff02::1", "multicast"),
    ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
    ("::ffff:10.1.2.3", "private"),
    ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
    ("2002:c0a8:0101::", "private"),  # 6to4 of 192.168.1.1
])
def test_non_public_addresses_are_refused_with_their_reason(address: str, reason: str) -> None:
    assert addresses.refusal(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111",
                                     "::ffff:8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert addresses.refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize("url", [
    "ftp://example.com/hook", "example.com/hook", "http:///path", "http://user:pw@example.com/",
    "https://example.com/" + "a" * addresses.MAX_URL, "http://example.com:99999/",
])
def test_urls_that_are_not_plain_http_are_refused(url: str) -> None:
    with pytest.raises(addresses.UrlRefused) as refused:
        addresses.checked_url(url)
    assert refused.value.code == "WEBHOOK_URL_REFUSED"


async def test_a_host_resolving_to_loopback_is_refused_unless_private_is_allowed() -> None:
    with pytest.raises(addresses.UrlRefused, match="loopback"):
        await addresses.check("http://localhost:8080/hook", allow_private=False)
    with pytest.raises(addresses.UrlRefused, match="loopback"):
        await addresses.check("http://[::ffff:127.0.0.1]/hook", allow_private=False)
    await addresses.check("http://localhost:8080/hook", allow_private=True)


async def test_the_resolver_answers_only_checked_addresses() -> None:
    resolver = addresses.CheckedResolver(allow_private=False)
    with pytest.raises(addresses.UrlRefused):
        await resolver.resolve("127.0.0.1", 80)
    allowed = await addresses.CheckedResolver(allow_private=True).resolve("127.0.0.1", 80)
    assert [r["host"] for r in allowed] == ["127.0.0.1"]


# Subscriptions.

def test_the_offered_events_are_the_public_ones_of_each_family() -> None:
    kinds = catalogue.event_types()
    assert {"order.placed", "order.status_changed", "payment.captured", "review.created",
            "file.uploaded", "inventory.stock_changed"} <= set(kinds)
    assert not {"payment.charge_requested", "product.create_requested"} & set(kinds)
    assert "order.*" in catalogue.subscriptions()


def test_a_wildcard_matches_its_family_only() -> None:
    assert catalogue.matches(["order.*"], "order.status_changed")
    assert not catalogue.matches(["order.*"], "payment.captured")
    assert catalogue.matches(["payment.captured"], "payment.captured")


def test_the_contracts_names_stock_and_order_status_are_subscriptions() -> None:
    assert catalogue.checked(["order.completed", "stock.*"]) == ["order.completed", "stock.*"]
    assert catalogue.matches(["stock.*"], "inventory.stock_changed")
    completed = {"status": "completed", "previous": "delivered"}
    assert catalogue.matches(["order.completed"], "order.status_changed", completed)
    assert not catalogue.matches(["order.completed"], "order.status_changed", {"status": "paid"})
    assert not catalogue.matches(["order.completed"], "order.placed")
    assert "order.completed" in catalogue.selectors("order.status_changed", completed)


def test_unknown_subscriptions_are_named_in_the_error() -> None:
    with pytest.raises(InvalidInput) as invalid:
        catalogue.checked(["order.*", "order.shipped", "*"])
    assert invalid.value.code == "WEBHOOK_EVENTS"
    assert [e.field for e in invalid.value.errors] == ["events.1", "events.2"]
    assert catalogue.checked(["order.*", "order.*"]) == ["order.*"]


# The delivery state.

class FakeLog:
    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}

    async def record(self, delivery_id: str, state: dict[str, Any]) -> None:
        self.docs[delivery_id] = {"body": state.get("body"), **self.docs.get(delivery_id, {}),
                                  **{k: v for k, v in state.items() if k != "body"}}

    async def forget(self, webhook_id: str) -> None:
        self.docs = {k: v for k, v in self.docs.items() if v["webhookId"] != webhook_id}


class FakeEndpoints:
    def __init__(self) -> None:
        self.disabled: list[str] = []

    async def get(self, webhook_id: str) -> Endpoint:
        return Endpoint(webhook_id=webhook_id, owner_id="seller-1", admin=False,
                        url="https://hooks.example/x", events=["order.*"], description=None,
                        secret=signing.new_secret(), enabled=True, created_at=AT)

    async def disable(self, webhook_id: str, reason: str) -> None:
        self.disabled.append(webhook_id)


def decider(disable_after: int = 3) -> tuple[DeliveriesDecider, dict[str, Any], RecordingEffects]:
    table: dict[str, Any] = {}
    effects = RecordingEffects(repos={DeliveryLog: FakeLog(), WebhookRepository: FakeEndpoints()})
    noted: list[dict[str, Any]] = []
    return DeliveriesDecider(table, effects, disable_after=disable_after,
                             on_change=noted.append, on_delete=lambda _: ()), table, effects


def requested(delivery_id: str = "d1") -> bytes:
    body = new_event(RetryRequested(webhook_id="w1", delivery_id="x", at=AT), key="w1",
                     source="test").encode().decode()
    return new_event(DeliveryRequested(
        webhook_id="w1", delivery_id=delivery_id, event_id="e1", event_type="order.placed",
        body=body, requested_at=AT,
    ), key="w1", source="test").encode()


def attempted(n: int, *, ok: bool, delivery_id: str = "d1", retry: bool = True) -> bytes:
    return new_event(DeliveryAttempted(
        webhook_id="w1", delivery_id=delivery_id, attempt=n, ok=ok,
        status_code=200 if ok else 500, error=None if ok else "HTTP 500",
        next_attempt_at=AT + timedelta(seconds=n) if retry and not ok else None, at=AT,
    ), key="w1", source="test").encode()


async def test_a_delivery_is_requested_once_and_delivered_after_failed_attempts() -> None:
    agent, table, effects = decider(disable_after=10)
    assert await agent.handle(requested()) == "requested"
    assert await agent.handle(requested()) == "duplicate"
    for n in (1, 2, 3):
        assert await agent.handle(attempted(n, ok=False)) == "pending"
    assert await agent.handle(attempted(3, ok=False)) == "stale"  # a replay changes nothing
    assert await agent.handle(attempted(4, ok=True)) == "delivered"
    state = table[delivery_key("d1")]
    assert (state["status"], state["attempts"], state["lastStatusCode"]) == ("delivered", 4, 200)
    assert effects.repos["DeliveryLog"].docs["d1"]["status"] == "delivered"
    assert table[endpoint_key("w1")]["failures"] == 0


def retried(effects: RecordingEffects, at: datetime = AT) -> bytes:
    """A manual retry as the gateway sends it: with the body the delivery log kept."""
    body = effects.repos["DeliveryLog"].docs["d1"]["body"]
    return new_event(RetryRequested(webhook_id="w1", delivery_id="d1", at=at, body=body),
                     key="w1", source="test").encode()


async def test_a_delivery_out_of_retries_fails_and_a_manual_retry_reopens_it() -> None:
    agent, table, effects = decider(disable_after=10)
    await agent.handle(requested())
    assert await agent.handle(attempted(1, ok=False, retry=False)) == "failed"
    assert "body" not in table[delivery_key("d1")]  # final: the log keeps it, not the table
    retry = retried(effects)
    assert await agent.handle(retry) == "retrying"
    state = table[delivery_key("d1")]
    assert (state["status"], state["retryBase"]) == ("pending", 1)
    assert await agent.handle(attempted(2, ok=True)) == "delivered"


async def test_a_manual_retry_processed_again_does_not_reopen_its_delivery() -> None:
    agent, table, effects = decider(disable_after=10)
    await agent.handle(requested())
    await agent.handle(attempted(1, ok=False, retry=False))
    retry = retried(effects)
    assert await agent.handle(retry) == "retrying"
    assert await agent.handle(attempted(2, ok=True)) == "delivered"
    # After a crash or a rewind of the group the same retry (and any older one) comes again.
    assert await agent.handle(retry) == "stale"
    assert table[delivery_key("d1")]["status"] == "delivered"
    assert await agent.handle(retried(effects, AT + timedelta(minutes=1))) == "retrying"
    assert table[delivery_key("d1")]["body"] == effects.repos["DeliveryLog"].docs["d1"]["body"]


async def test_an_endpoint_failing_too_often_in_a_row_is_disabled_and_its_owner_told() -> None:
    agent, table, effects = decider(disable_after=3)
    for d in ("d1", "d2", "d3"):
        await agent.handle(requested(d))
        await agent.handle(attempted(1, ok=False, delivery_id=d))
    assert effects.repos["WebhookRepository"].disabled == ["w1"]
    assert table[endpoint_key("w1")]["disabled"] is True
    (disabled,) = effects.of("webhook.disabled")
    (message,) = effects.of("message.requested")
    assert message.data["template"] == "webhook_disabled"
    assert message.data["userId"] == disabled.data["ownerId"] == "seller-1"


# The dispatcher.

class OneEndpoint(FakeEndpoints):
    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url

    async def get(self, webhook_id: str) -> Endpoint:
        return dataclasses.replace(await super().get(webhook_id), url=self.url)


def dispatcher(url: str, **changes: Any) -> tuple[Dispatcher, dict[str, Any], RecordingEffects]:
    settings = Settings(jwt_secret="x" * 48, webhook_retry_schedule="1", **changes)
    table: dict[str, Any] = {}
    effects = RecordingEffects(repos={WebhookRepository: OneEndpoint(url)})
    return Dispatcher(table, effects, settings), table, effects


async def pending(table: dict[str, Any], dispatch: Dispatcher, ident: str, webhook: str) -> None:
    agent = DeliveriesDecider(table, RecordingEffects(repos={DeliveryLog: FakeLog()}),
                              disable_after=10, on_change=dispatch.note,
                              on_delete=dispatch.forget)
    raw = orjson.loads(requested(ident))
    raw["data"]["webhookId"] = webhook
    await agent.handle(orjson.dumps(raw))


async def test_outside_dev_a_delivery_to_a_private_address_fails_without_a_request() -> None:
    dispatch, table, effects = dispatcher("http://127.0.0.1:9/never", env="prod")
    await pending(table, dispatch, "d1", "w1")
    assert await dispatch.tick(AT + timedelta(seconds=1)) == 1
    await asyncio.gather(*list(dispatch._tasks))
    (attempt,) = effects.of("webhook.delivery_attempted")
    assert attempt.data["ok"] is False
    assert attempt.data["statusCode"] is None
    assert attempt.data["error"].startswith("WEBHOOK_URL_REFUSED")
    assert attempt.data["nextAttemptAt"] is not None  # retried: DNS answers may change
    await dispatch.aclose()


async def test_one_endpoints_slots_bound_its_attempts_and_not_the_others() -> None:
    dispatch, table, _ = dispatcher("http://127.0.0.1:9/never", webhook_endpoint_concurrency=2,
                                    webhook_concurrency=3)
    for n in range(4):
        await pending(table, dispatch, f"slow-{n}", "slow")
    await pending(table, dispatch, "other-0", "other")
    blocked = asyncio.Event()
    started: list[str] = []

    async def hang(delivery_id: str, webhook_id: str, attempt: int) -> None:
        started.append(webhook_id)
        await blocked.wait()

    dispatch._attempt = hang  # type: ignore[method-assign]
    assert await dispatch.tick(AT + timedelta(seconds=1)) == 3
    await asyncio.sleep(0)
    assert sorted(started) == ["other", "slow", "slow"]
    assert await dispatch.tick(AT + timedelta(seconds=1)) == 0  # nothing made twice
    blocked.set()
    await dispatch.aclose()


class CountedTable(dict[str, Any]):
    """A table that counts its full scans."""

    scans = 0

    def items(self) -> Any:
        self.scans += 1
        return super().items()


async def test_the_index_is_built_once_and_an_attempt_reported_is_not_made_again() -> None:
    settings = Settings(jwt_secret="x" * 48, webhook_retry_schedule="1", webhook_timeout=0.01)
    table = CountedTable()
    effects = RecordingEffects(repos={WebhookRepository: OneEndpoint("http://127.0.0.1:9/x")})
    dispatch = Dispatcher(table, effects, settings)
    await pending(table, dispatch, "d1", "w1")
    for _ in range(3):
        await dispatch.tick(AT + timedelta(seconds=1))
        await asyncio.gather(*list(dispatch._tasks))
    assert table.scans == 1  # at the first tick; afterwards only the agent's changes
    # Reported, the agent lagging: the attempt is not made again, however late it is.
    assert len(effects.of("webhook.delivery_attempted")) == 1
    dispatch.reassigned()
    await dispatch.tick(AT + timedelta(hours=1))
    assert table.scans == 2
    assert len(effects.of("webhook.delivery_attempted")) == 1
    await dispatch.aclose()


async def test_a_deleted_endpoints_deliveries_leave_the_table_and_the_log() -> None:
    settings = Settings(jwt_secret="x" * 48)
    table: dict[str, Any] = {}
    log = FakeLog()
    dispatch = Dispatcher(table, RecordingEffects(), settings)
    agent = DeliveriesDecider(table, RecordingEffects(repos={DeliveryLog: log}),
                              disable_after=10, on_change=dispatch.note,
                              on_delete=dispatch.forget)
    await agent.handle(requested("d1"))
    await agent.handle(requested("d2"))
    deleted = new_event(WebhookChanged(webhook_id="w1", owner_id="seller-1", change="deleted",
                                       enabled=False, at=AT), key="w1", source="test")
    assert await agent.handle(deleted.encode()) == "deleted"
    assert table == {}
    assert log.docs == {}
    assert await dispatch.tick(AT + timedelta(days=1)) == 0


def test_an_ip_literal_is_checked_before_a_request_and_a_name_is_left_to_the_resolver() -> None:
    with pytest.raises(addresses.UrlRefused):
        addresses.checked_literal("127.0.0.1", allow_private=False)
    with pytest.raises(addresses.UrlRefused):
        addresses.checked_literal("::1", allow_private=False)
    addresses.checked_literal("127.0.0.1", allow_private=True)
    addresses.checked_literal("hooks.example", allow_private=False)


async def test_a_resolver_that_does_not_answer_is_a_timeout_with_its_own_code(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def silent(*_: Any, **__: Any) -> Any:
        await asyncio.sleep(60)

    monkeypatch.setattr(addresses, "RESOLVE_SECONDS", 0.05)
    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", silent)
    with pytest.raises(addresses.ResolveTimeout) as timeout:
        await addresses.check("https://hooks.example/x", allow_private=False)
    assert timeout.value.code == "WEBHOOK_DNS_TIMEOUT"


# The router.

class Subscribed:
    def __init__(self, enabled: bool = True, since: datetime = AT) -> None:
        self.enabled = enabled
        self.since = since
        self.asked: list[tuple[list[str], set[str]]] = []

    async def any_enabled(self) -> bool:
        return self.enabled

    async def subscribed(self, kinds: list[str], owners: set[str]) -> list[Endpoint]:
        self.asked.append((kinds, set(owners)))
        endpoint = await FakeEndpoints().get("w-" + "-".join(sorted(owners)))
        return [dataclasses.replace(endpoint, subscribed_at=self.since)] if owners else []


class Parties:
    async def parties(self, order_id: str) -> tuple[str, list[str]]:
        return "buyer-1", ["seller-9"]


def payment_captured() -> bytes:
    from streams.events.payments import PaymentCapturedPublic

    return new_event(PaymentCapturedPublic.model_validate({
        "orderId": "o1", "paymentId": "p1", "provider": "fake", "reference": "r",
        "amount": "10.00", "currency": "USD"}), key="o1", source="test").encode()


async def test_a_payment_is_routed_to_the_sellers_of_its_order_once_per_endpoint() -> None:
    from agents.webhooks.router import WebhookRouter
    from stores.orders import OrderRepository

    endpoints = Subscribed()
    effects = RecordingEffects(repos={WebhookRepository: endpoints, OrderRepository: Parties()})
    router = WebhookRouter(effects)
    raw = payment_captured()
    assert await router.handle(raw) == "routed to 1"
    assert endpoints.asked == [(["payment.captured", "payment.*"], {"seller-9"})]
    await router.handle(raw)  # redelivered: the same delivery is asked for again
    first, again = effects.of("webhook.delivery_requested")
    assert first.id == again.id
    assert first.data["deliveryId"] == again.data["deliveryId"]
    assert first.key == "w-seller-9"
    assert orjson.loads(first.data["body"])["type"] == "payment.captured"


async def test_with_no_endpoint_enabled_the_router_asks_no_more_for_a_while() -> None:
    from agents.webhooks.router import WebhookRouter

    endpoints = Subscribed(enabled=False)
    router = WebhookRouter(RecordingEffects(repos={WebhookRepository: endpoints}))
    assert await router.handle(payment_captured()) == "no endpoints"
    endpoints.enabled = True
    assert await router.handle(payment_captured()) == "no endpoints"  # within QUIET_SECONDS
    assert endpoints.asked == []


async def test_an_event_older_than_an_endpoints_subscription_is_not_routed_to_it() -> None:
    from agents.webhooks.router import WebhookRouter
    from stores.orders import OrderRepository

    # A replay: the event occurred before the endpoint subscribed.
    endpoints = Subscribed(since=datetime.now(UTC) + timedelta(minutes=1))
    effects = RecordingEffects(repos={WebhookRepository: endpoints, OrderRepository: Parties()})
    assert await WebhookRouter(effects).handle(payment_captured()) == "routed to 0"
    assert effects.of("webhook.delivery_requested") == []
