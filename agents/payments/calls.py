"""Provider calls with a per-call timeout, bounded retries with backoff, and a circuit breaker.

A provider call blocks the payments agent (and so its partitions) while it runs, so
everything is bounded: each call by ``call_timeout``, the whole by ``attempts`` and the
backoff. Timeouts and provider errors are retried (the idempotency key makes that
safe); a declined charge is an answer, not a failure. The breaker is asked once per
operation (its idempotency key) and told its final outcome once, retries included: an
admitted operation runs its retries even if the circuit opens meanwhile, and an
operation refused by an open circuit made no call at all (``circuit_open``, with the
seconds until the circuit half-opens), so the caller may wait and send it again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, Literal, TypeVar

from agents.payments.circuit import CircuitBreaker
from agents.payments.provider import ProviderError, ProviderTimeout
from config import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
FailureCode = Literal["provider_timeout", "provider_error", "circuit_open"]
CIRCUIT_OPEN_REASON = "payment provider unavailable (circuit open); retry later"


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long one call may take, how often to try, and how long to wait in between."""

    call_timeout: float = 2.0
    attempts: int = 3
    backoff: float = 0.2
    max_backoff: float = 2.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        """The policy configured by ``MERCATO_PAYMENT_*``."""
        return cls(
            call_timeout=settings.payment_call_timeout,
            attempts=settings.payment_attempts,
            backoff=settings.payment_backoff,
        )

    def delay(self, attempt: int) -> float:
        """The pause after failed attempt number ``attempt`` (1-based): exponential, capped."""
        return float(min(self.backoff * 2 ** (attempt - 1), self.max_backoff))

    @property
    def worst_case(self) -> float:
        """The longest a call sequence can block the agent, in seconds."""
        pauses = sum(self.delay(a) for a in range(1, self.attempts))
        return self.attempts * self.call_timeout + pauses


@dataclasses.dataclass(frozen=True, slots=True)
class Attempted(Generic[T]):
    """The provider's answer, or why there is none, and how many calls were made."""

    result: T | None
    attempts: int
    code: FailureCode | None = None
    reason: str = ""
    # circuit_open only: seconds until the breaker lets a trial through.
    retry_after: float = 0.0


class ResilientCalls:
    """Runs provider operations under the retry policy and the (shared) circuit breaker."""

    def __init__(
        self,
        policy: RetryPolicy,
        breaker: CircuitBreaker,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.policy = policy
        self.breaker = breaker
        self._sleep = sleep

    @classmethod
    def from_settings(cls, settings: Settings) -> ResilientCalls:
        """Policy and breaker as configured."""
        breaker = CircuitBreaker(
            min_calls=settings.payment_breaker_min_calls,
            failure_rate=settings.payment_breaker_failure_rate,
            window=settings.payment_breaker_window,
            cooldown=settings.payment_breaker_cooldown,
        )
        return cls(RetryPolicy.from_settings(settings), breaker)

    async def call(
        self, operation: Callable[[], Awaitable[T]], *, key: str, what: str
    ) -> Attempted[T]:
        """Call ``operation`` (idempotency key ``key``) until it answers or the attempts run out.

        Refused at once, with no call, while the circuit is open.
        """
        if not self.breaker.allow(key):
            return Attempted(None, 0, "circuit_open", CIRCUIT_OPEN_REASON,
                             retry_after=self.breaker.retry_after())
        code: FailureCode = "provider_error"
        reason = ""
        made = 0
        for attempt in range(1, self.policy.attempts + 1):
            made = attempt
            try:
                result = await asyncio.wait_for(operation(), timeout=self.policy.call_timeout)
            except (TimeoutError, ProviderTimeout):
                code = "provider_timeout"
                reason = f"the payment provider did not answer within {self.policy.call_timeout}s"
            except ProviderError as exc:
                code, reason = "provider_error", f"the payment provider failed: {exc.detail}"
            else:
                self.breaker.succeeded(key)
                return Attempted(result, made)
            if attempt < self.policy.attempts:
                delay = self.policy.delay(attempt)
                log.warning(
                    "%s: attempt %d/%d failed (%s), retrying in %.2fs",
                    what, attempt, self.policy.attempts, code, delay,
                )
                await self._sleep(delay)
        self.breaker.failed(key)
        return Attempted(None, made, code, f"{reason} ({made} attempts)")
