"""The payments agent: provider outcomes, retries, the circuit breaker and idempotent redelivery."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from agents.app import create_worker_app
from agents.payments.calls import CIRCUIT_OPEN_REASON, ResilientCalls, RetryPolicy
from agents.payments.circuit import CircuitBreaker
from agents.payments.decider import PaymentsDecider
from agents.payments.provider import (
    ChargeResult,
    ProviderError,
    RefundResult,
    SimulatedProvider,
)
from config import Settings
from streams.envelope import new_event
from streams.events.payments import (
    ChargeRequested,
    PaymentCapturedPublic,
    PaymentFailedPublic,
    RefundRequested,
)
from streams.events.saga import (
    PaymentCaptured,
    PaymentDeferred,
    PaymentFailed,
    PaymentRefunded,
    RefundFailed,
)
from tests.support.recording import RecordingEffects, close_unstarted_consumer_loop, identity

NOW = datetime(2024, 5, 17, 12, 0, 0, 250000, tzinfo=UTC)
FAST = RetryPolicy(call_timeout=0.05, attempts=3, backoff=0.001)


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclasses.dataclass
class Counting:
    """The real simulator, with its calls counted and optionally ``failures`` 5xx first."""

    inner: SimulatedProvider = dataclasses.field(
        default_factory=lambda: SimulatedProvider(hang=1.0)
    )
    failures: int = 0
    calls: Counter[str] = dataclasses.field(default_factory=Counter)
    name: str = "simulator"

    async def charge(
        self, idempotency_key: str, amount: Decimal, currency: str, method: str
    ) -> ChargeResult:
        self.calls["charge"] += 1
        self._maybe_fail()
        return await self.inner.charge(idempotency_key, amount, currency, method)

    async def refund(
        self, idempotency_key: str, reference: str, amount: Decimal, currency: str
    ) -> RefundResult:
        self.calls["refund"] += 1
        self._maybe_fail()
        return await self.inner.refund(idempotency_key, reference, amount, currency)

    def _maybe_fail(self) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise ProviderError("injected 502 Bad Gateway")


def raw(payload: BaseModel, order: str) -> bytes:
    return new_event(payload, key=order, source="agents.orders").encode()


def charge(order: str = "o-1", method: str = "tok_visa", amount: str = "25.50") -> bytes:
    return raw(
        ChargeRequested(
            order_id=order, payment_id=f"pay-{order}", idempotency_key=f"charge:{order}",
            amount=Decimal(amount), currency="USD", payment_method=method,
        ),
        order,
    )


def refund(order: str = "o-1", amount: str = "25.50", n: int = 1) -> bytes:
    return raw(
        RefundRequested(
            order_id=order, payment_id=f"pay-{order}", refund_id=f"ref-{order}-{n}",
            idempotency_key=f"refund:{order}:{n}", amount=Decimal(amount), currency="USD",
            reason="cancelled by buyer",
        ),
        order,
    )


@pytest.fixture
def effects() -> RecordingEffects:
    return RecordingEffects()


@pytest.fixture
def provider() -> Counting:
    return Counting()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(clock: FakeClock) -> CircuitBreaker:
    # Two distinct operations, all failed: small numbers keep the scenarios short.
    return CircuitBreaker(min_calls=2, failure_rate=1.0, window=30.0, cooldown=15.0, clock=clock)


@pytest.fixture
def table() -> dict[str, Any]:
    return {}


@pytest.fixture
def decider(
    table: dict[str, Any], effects: RecordingEffects, provider: Counting, breaker: CircuitBreaker
) -> PaymentsDecider:
    return PaymentsDecider(table, effects, provider, ResilientCalls(FAST, breaker))


def state_of(breaker: CircuitBreaker) -> str:
    """The breaker's state, read afresh (mypy would keep an earlier narrowing)."""
    return breaker.state


def failure(effects: RecordingEffects) -> tuple[str, str, int]:
    saga = effects.on("order-saga")[-1].payload(PaymentFailed)
    public = effects.on("payments")[-1].payload(PaymentFailedPublic)
    assert (saga.code, saga.reason) == (public.code, public.reason)
    return saga.code, saga.reason, public.attempts


# --- charges -------------------------------------------------------------------------------


async def test_visa_is_captured_and_announced_without_the_method(
    decider: PaymentsDecider, effects: RecordingEffects, provider: Counting, table: dict[str, Any]
) -> None:
    assert await decider.handle(charge(), now=NOW) == "captured"
    [saga] = effects.on("order-saga")
    [public] = effects.on("payments")
    assert saga.key == public.key == "o-1"
    captured = saga.payload(PaymentCaptured)
    assert captured.reference.startswith("sim_ch_")
    assert (captured.amount, captured.currency, captured.provider) == (
        Decimal("25.50"), "USD", "simulator"
    )
    assert public.payload(PaymentCapturedPublic).reference == captured.reference
    assert public.data["amount"] == "25.50"  # a decimal string, never a float
    assert "tok_" not in str(public.data)
    assert "method" not in str(public.data).lower()
    assert table["o-1"]["charges"]["charge:o-1"]["outcome"] == "captured"
    assert provider.calls == Counter(charge=1)


async def test_redelivered_charge_never_calls_the_provider_twice(
    decider: PaymentsDecider, effects: RecordingEffects, provider: Counting
) -> None:
    command = charge()
    await decider.handle(command, now=NOW)
    first = list(effects.emitted)
    assert await decider.handle(command, now=NOW + timedelta(minutes=1)) == "captured"
    # A fresh envelope for the same payment (another key) does not charge either.
    other_key = raw(
        ChargeRequested(
            order_id="o-1", payment_id="pay-o-1", idempotency_key="charge:o-1:again",
            amount=Decimal("25.50"), currency="USD", payment_method="tok_visa",
        ),
        "o-1",
    )
    assert await decider.handle(other_key, now=NOW) == "captured"
    assert provider.calls == Counter(charge=1)
    assert identity(effects.emitted[: 2 * len(first)]) == identity(first) * 2
    assert [e.occurred_at for _, e in effects.emitted[: len(first)]] == [
        e.occurred_at for _, e in effects.emitted[len(first) : 2 * len(first)]
    ]


async def test_declined_is_final_without_retry(
    decider: PaymentsDecider, effects: RecordingEffects, provider: Counting
) -> None:
    assert await decider.handle(charge(method="tok_declined"), now=NOW) == "failed"
    assert failure(effects) == ("declined", "card declined", 1)
    assert provider.calls == Counter(charge=1)


async def test_timeouts_are_retried_then_fail(
    decider: PaymentsDecider, effects: RecordingEffects, provider: Counting
) -> None:
    assert await decider.handle(charge(method="tok_timeout"), now=NOW) == "failed"
    code, reason, attempts = failure(effects)
    assert (code, attempts) == ("provider_timeout", 3)
    assert "did not answer" in reason
    assert provider.calls == Counter(charge=3)


async def test_provider_errors_are_retried_then_fail(
    decider: PaymentsDecider, effects: RecordingEffects, provider: Counting
) -> None:
    assert await decider.handle(charge(method="tok_error"), now=NOW) == "failed"
    code, reason, attempts = failure(effects)
    assert (code, attempts) == ("provider_error", 3)
    assert "503" in reason
    assert provider.calls == Counter(charge=3)
    # Settled: the redelivery repeats the failure without calling again.
    assert await decider.handle(charge(method="tok_error"), now=NOW) == "failed"
    assert provider.calls == Counter(charge=3)


async def test_transient_errors_then_success_is_captured(
    decider: PaymentsDecider, effects: RecordingEffects, provider: Counting, table: dict[str, Any]
) -> None:
    provider.failures = 2
    assert await decider.handle(charge(), now=NOW) == "captured"
    assert provider.calls == Counter(charge=3)
    assert table["o-1"]["charges"]["charge:o-1"]["attempts"] == 3


# --- the circuit breaker -------------------------------------------------------------------


async def test_breaker_opens_defers_charges_and_half_opens_after_the_cool_down(
    decider: PaymentsDecider,
    effects: RecordingEffects,
    provider: Counting,
    breaker: CircuitBreaker,
    clock: FakeClock,
    table: dict[str, Any],
) -> None:
    await decider.handle(charge("o-1", "tok_error"), now=NOW)  # one failed charge (3 calls)
    assert breaker.state == "closed"
    await decider.handle(charge("o-2", "tok_error"), now=NOW)  # two: every one failed
    assert state_of(breaker) == "open"
    assert provider.calls == Counter(charge=6)  # each admitted charge ran all its retries
    assert failure(effects) == ("provider_error", failure(effects)[1], 3)
    effects.clear()

    # Another buyer's card is not failed: the charge is deferred, with no call and no record.
    assert await decider.handle(charge("o-3"), now=NOW) == "deferred"
    [deferred] = effects.on("order-saga")
    assert deferred.type == "saga.payment_deferred"
    assert deferred.payload(PaymentDeferred).reason == CIRCUIT_OPEN_REASON
    assert deferred.payload(PaymentDeferred).retry_after == 15.0
    assert effects.on("payments") == []  # nothing happened that the public should see
    assert "o-3" not in table
    assert provider.calls == Counter(charge=6)

    clock.now += 15.0
    assert state_of(breaker) == "half_open"
    assert await decider.handle(charge("o-3"), now=NOW) == "captured"  # the saga's re-send
    assert state_of(breaker) == "closed"
    assert provider.calls == Counter(charge=7)


async def test_a_redelivered_deferral_repeats_its_id_and_a_re_send_gets_a_new_one(
    decider: PaymentsDecider, effects: RecordingEffects, breaker: CircuitBreaker,
) -> None:
    breaker.failed("a")
    breaker.failed("b")
    command = charge("o-3")
    await decider.handle(command, now=NOW)
    await decider.handle(command, now=NOW)
    await decider.handle(charge("o-3"), now=NOW)  # a new command for the same charge
    ids = [e.id for e in effects.on("order-saga")]
    assert ids[0] == ids[1] != ids[2]


async def test_one_customers_retries_and_re_sends_count_as_one_failure(
    decider: PaymentsDecider, breaker: CircuitBreaker, provider: Counting,
) -> None:
    for _ in range(3):  # redelivered and re-sent: always the key charge:o-1
        await decider.handle(charge("o-1", "tok_timeout"), now=NOW)
        breaker.failed("charge:o-1")
    assert breaker.state == "closed"
    assert await decider.handle(charge("o-9"), now=NOW) == "captured"


async def test_a_failed_trial_opens_the_circuit_again(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    breaker.failed("a")
    breaker.failed("b")
    clock.now += 15.0
    assert breaker.allow("c") is True
    assert breaker.allow("d") is False  # only one trial at a time
    assert breaker.allow("c") is True  # the trial's own re-send
    breaker.failed("c")
    assert breaker.state == "open"
    clock.now += 14.9
    assert breaker.allow("d") is False
    clock.now += 0.1
    assert breaker.allow("d") is True


async def test_failures_outside_the_window_or_before_a_success_do_not_add_up(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    breaker.failed("a")
    clock.now += 31.0
    breaker.failed("b")
    assert breaker.state == "closed"
    breaker.succeeded("c")
    breaker.failed("d")
    assert breaker.state == "closed"  # 2 of 3 failed: under the rate of 1.0


def test_default_policy_blocks_the_agent_for_less_than_ten_seconds() -> None:
    policy = RetryPolicy.from_settings(Settings())
    assert policy.worst_case < 10.0
    assert [policy.delay(a) for a in (1, 2, 3)] == [0.2, 0.4, 0.8]


# --- refunds -------------------------------------------------------------------------------


async def test_refund_of_a_captured_charge_happens_once(
    decider: PaymentsDecider, effects: RecordingEffects, provider: Counting
) -> None:
    await decider.handle(charge(), now=NOW)
    effects.clear()
    command = refund()
    assert await decider.handle(command, now=NOW) == "refunded"
    [saga] = effects.on("order-saga")
    refunded = saga.payload(PaymentRefunded)
    assert (refunded.refund_id, refunded.amount) == ("ref-o-1-1", Decimal("25.50"))
    assert [e.type for e in effects.on("payments")] == ["payment.refunded"]
    first = list(effects.emitted)
    assert await decider.handle(command, now=NOW) == "refunded"
    assert identity(effects.emitted) == identity(first) * 2
    assert provider.calls == Counter(charge=1, refund=1)


async def test_refunds_that_cannot_go_to_the_provider_fail_at_once(
    decider: PaymentsDecider, effects: RecordingEffects, provider: Counting
) -> None:
    assert await decider.handle(refund("o-7"), now=NOW) == "failed"
    reason = effects.on("order-saga")[-1].payload(RefundFailed).reason
    assert "no captured charge" in reason
    await decider.handle(charge("o-8", amount="10.00"), now=NOW)
    assert await decider.handle(refund("o-8", amount="6.00"), now=NOW) == "refunded"
    assert await decider.handle(refund("o-8", amount="6.00", n=2), now=NOW) == "failed"
    assert "exceeds" in effects.on("order-saga")[-1].payload(RefundFailed).reason
    assert effects.on("payments")[-1].type == "payment.refunded"  # failures are not public
    assert provider.calls == Counter(charge=1, refund=1)


async def test_refund_provider_errors_are_retried_then_fail(
    decider: PaymentsDecider, effects: RecordingEffects, provider: Counting, table: dict[str, Any]
) -> None:
    await decider.handle(charge(), now=NOW)
    provider.failures = 3
    # Not settled: the saga is told it may send the refund again, and nothing is stored.
    assert await decider.handle(refund(), now=NOW) == "retryable"
    failed = effects.on("order-saga")[-1].payload(RefundFailed)
    assert "3 attempts" in failed.reason
    assert (failed.retryable, failed.code) == (True, "provider_error")
    assert table["o-1"]["refunds"] == {}
    assert provider.calls == Counter(charge=1, refund=3)
    # The saga's next attempt (same key) refunds, once.
    assert await decider.handle(refund(), now=NOW) == "refunded"
    assert await decider.handle(refund(), now=NOW) == "refunded"
    assert provider.calls == Counter(charge=1, refund=4)


async def test_a_refund_meeting_the_open_circuit_is_retryable_without_a_call(
    decider: PaymentsDecider, effects: RecordingEffects, provider: Counting,
    breaker: CircuitBreaker, clock: FakeClock,
) -> None:
    await decider.handle(charge(), now=NOW)
    clock.now += 31.0  # the charge's success has left the window
    breaker.failed("a")
    breaker.failed("b")
    assert await decider.handle(refund(), now=NOW) == "retryable"
    failed = effects.on("order-saga")[-1].payload(RefundFailed)
    assert (failed.retryable, failed.code) == (True, "circuit_open")
    assert provider.calls == Counter(charge=1)


async def test_refunds_refused_for_good_are_not_retryable(
    decider: PaymentsDecider, effects: RecordingEffects
) -> None:
    assert await decider.handle(refund("o-7"), now=NOW) == "failed"
    assert effects.on("order-saga")[-1].payload(RefundFailed).retryable is False


async def test_each_attempt_at_a_refused_refund_gets_its_own_answer(
    decider: PaymentsDecider, effects: RecordingEffects
) -> None:
    # The saga sends a refund again after a second cancel or an operator's retry (same
    # key, new command): the stored refusal must answer it under a new id, or the saga
    # drops it as a duplicate and waits for an answer that never comes.
    first, again = refund("o-7"), refund("o-7")
    assert await decider.handle(first, now=NOW) == "failed"
    assert await decider.handle(first, now=NOW) == "failed"  # redelivered: same answer
    assert await decider.handle(again, now=NOW) == "failed"
    ids = [e.id for e in effects.on("order-saga")]
    assert ids[0] == ids[1] != ids[2]


# --- the simulator itself ------------------------------------------------------------------


async def test_simulator_is_idempotent_by_key() -> None:
    sim = SimulatedProvider(hang=0.01)
    first = await sim.charge("k1", Decimal("5"), "EUR", "tok_visa")
    assert await sim.charge("k1", Decimal("5"), "EUR", "tok_visa") == first
    assert (await sim.charge("k2", Decimal("5"), "EUR", "tok_visa")).reference != first.reference
    with pytest.raises(ProviderError, match="reused"):
        await sim.charge("k1", Decimal("6"), "EUR", "tok_visa")
    assert (await sim.charge("k3", Decimal("5"), "EUR", "tok_nope")).status == "declined"
    back = await sim.refund("r1", first.reference, Decimal("5"), "EUR")
    assert back.status == "refunded"
    assert back.reference.startswith("sim_re_")
    assert (await sim.refund("r2", "ch_other", Decimal("5"), "EUR")).status == "failed"


# --- Faust's own harness -------------------------------------------------------------------


async def test_faust_agent_wiring(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, jwt_secret="x" * 48, topic_prefix="u.",
        payment_call_timeout=0.05, payment_backoff=0.001,
    )
    effects = RecordingEffects()
    worker = create_worker_app(settings, store="memory://", effects=effects)
    try:
        async with worker.agents["payments"].test_context() as agent:
            await agent.put(key=b"o-1", value=charge("o-1"))
            await agent.put(key=b"o-1", value=charge("o-1"))  # redelivery
            await agent.put(key=b"o-2", value=charge("o-2", "tok_timeout"))
            await agent.put(key=b"o-1", value=refund("o-1"))
            await agent.put(key=b"o-3", value=b"{}")
            # Orders are processed concurrently (agents.runtime.lanes): put() returns once a record
            # is taken, not done; stopping the agent would cancel the slow o-2.
            async with asyncio.timeout(5):
                # Polled: the recording effects have nothing to wait on.
                while len(effects.on("order-saga")) < 4 or not effects.on("dlq"):  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
    finally:
        close_unstarted_consumer_loop(worker.app)

    # Orders proceed concurrently (agents.runtime.lanes): the order is per key, not across keys.
    saga = effects.on("order-saga")
    assert [e.type for e in saga if e.key == "o-1"] == [
        "saga.payment_captured", "saga.payment_captured", "saga.payment_refunded",
    ]
    [failed] = [e for e in saga if e.key == "o-2"]
    assert failed.type == "saga.payment_failed"
    captured = [e for e in saga if e.type == "saga.payment_captured"]
    assert captured[0].id == captured[1].id
    assert failed.data["code"] == "provider_timeout"
    [letter] = effects.on("dlq")
    assert letter.data["agent"] == "payments"


def test_payment_settings_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "MERCATO_JWT_SECRET": "x" * 48,
            "MERCATO_PAYMENT_CALL_TIMEOUT": "0.5",
            "MERCATO_PAYMENT_ATTEMPTS": "4",
            "MERCATO_PAYMENT_BREAKER_COOLDOWN": "3",
            "MERCATO_PAYMENT_BREAKER_MIN_CALLS": "20",
            "MERCATO_PAYMENT_BREAKER_FAILURE_RATE": "0.25",
        }
    )
    policy = ResilientCalls.from_settings(settings).policy
    assert (policy.call_timeout, policy.attempts) == (0.5, 4)
    assert settings.payment_breaker_cooldown == 3.0
    assert (settings.payment_breaker_min_calls, settings.payment_breaker_failure_rate) == (
        20, 0.25)
    assert Settings.from_env(settings.to_env()).payment_attempts == 4
