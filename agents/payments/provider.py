"""The payment provider contract and the built-in simulator.

A provider is idempotent by idempotency key, like real ones: the same key always
gets the same result, so retrying a call (or a redelivered command) never
charges twice. Declines are results; timeouts and 5xx-like failures are
exceptions the caller may retry.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from decimal import Decimal
from typing import Literal, Protocol, TypeVar

from streams.errors import MercatoError

R = TypeVar("R")


class ProviderError(MercatoError):
    """The provider failed (5xx-like); retrying later may work."""

    code = "PROVIDER_ERROR"
    title = "Payment provider error"


class ProviderTimeout(MercatoError):
    """The provider did not answer in time; retrying with the same key is safe."""

    code = "PROVIDER_TIMEOUT"
    title = "Payment provider timeout"


@dataclasses.dataclass(frozen=True, slots=True)
class ChargeResult:
    """A settled charge: captured (with the provider's reference) or declined."""

    status: Literal["captured", "declined"]
    reference: str = ""
    reason: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class RefundResult:
    """A settled refund: refunded (with the provider's reference) or failed for good."""

    status: Literal["refunded", "failed"]
    reference: str = ""
    reason: str = ""


class PaymentProvider(Protocol):
    """What the payments agent needs from a payment provider."""

    @property
    def name(self) -> str:
        """Shown in payment events (``provider``)."""
        ...

    async def charge(
        self, idempotency_key: str, amount: Decimal, currency: str, method: str
    ) -> ChargeResult:
        """Charge ``method``; raises ``ProviderTimeout``/``ProviderError`` on transient failure."""
        ...

    async def refund(
        self, idempotency_key: str, reference: str, amount: Decimal, currency: str
    ) -> RefundResult:
        """Refund (part of) the charge ``reference``; same failure modes as ``charge``."""
        ...


def _reference(prefix: str, idempotency_key: str) -> str:
    return f"{prefix}{hashlib.sha256(idempotency_key.encode()).hexdigest()[:20]}"


class SimulatedProvider:
    """The built-in provider: behaviour chosen by the payment method token.

    ``tok_visa`` is captured, ``tok_declined`` declined, ``tok_timeout`` hangs for
    ``hang`` seconds (longer than any sane client timeout) and ``tok_error`` raises a
    503-like ``ProviderError``; other tokens are declined as unknown. Settled results
    are remembered per idempotency key (in memory: the simulator is per process).
    """

    name = "simulator"

    def __init__(self, *, hang: float = 30.0, latency: float = 0.0) -> None:
        self._hang = hang
        self._latency = latency
        self._charges: dict[str, tuple[tuple[str, str, str], ChargeResult]] = {}
        self._refunds: dict[str, tuple[tuple[str, str, str], RefundResult]] = {}

    async def charge(
        self, idempotency_key: str, amount: Decimal, currency: str, method: str
    ) -> ChargeResult:
        """Charge according to the ``method`` token."""
        params = (format(amount, "f"), currency, method)
        if idempotency_key in self._charges:
            return self._replayed(self._charges[idempotency_key], params)
        await self._answer_delay(method)
        if amount <= 0:
            result = ChargeResult("declined", reason="invalid amount")
        elif method == "tok_visa":
            result = ChargeResult("captured", reference=_reference("sim_ch_", idempotency_key))
        elif method == "tok_declined":
            result = ChargeResult("declined", reason="card declined")
        else:
            result = ChargeResult("declined", reason=f"unknown payment method {method!r}")
        self._charges[idempotency_key] = (params, result)
        return result

    async def refund(
        self, idempotency_key: str, reference: str, amount: Decimal, currency: str
    ) -> RefundResult:
        """Refund a simulator charge (any ``sim_ch_`` reference: charges are not persisted)."""
        params = (reference, format(amount, "f"), currency)
        if idempotency_key in self._refunds:
            return self._replayed(self._refunds[idempotency_key], params)
        await self._answer_delay("")
        if not reference.startswith("sim_ch_"):
            result = RefundResult("failed", reason=f"unknown charge {reference!r}")
        elif amount <= 0:
            result = RefundResult("failed", reason="invalid amount")
        else:
            result = RefundResult("refunded", reference=_reference("sim_re_", idempotency_key))
        self._refunds[idempotency_key] = (params, result)
        return result

    async def _answer_delay(self, method: str) -> None:
        if method == "tok_timeout":
            await asyncio.sleep(self._hang)
            raise ProviderTimeout("the simulated provider did not answer")
        if self._latency:
            await asyncio.sleep(self._latency)
        if method == "tok_error":
            raise ProviderError("the simulated provider answered 503 Service Unavailable")

    @staticmethod
    def _replayed(entry: tuple[tuple[str, str, str], R], params: tuple[str, str, str]) -> R:
        stored, result = entry
        if stored != params:
            # Real providers refuse a key reused for another request; so does the simulator.
            raise ProviderError("idempotency key reused with different parameters")
        return result
