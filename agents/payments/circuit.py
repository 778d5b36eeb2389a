"""A circuit breaker: stop calling a failing dependency, then probe it with one trial call.

closed → (at least ``min_calls`` operations within ``window`` seconds, ``failure_rate`` of
them failed) → open → (after ``cooldown`` seconds) → half-open: one trial operation is let
through; its success closes the circuit, its failure opens it again for another cool-down.

An *operation* is one charge or refund, named by its idempotency key, with all its retries:
the window keeps one outcome per key (the latest). So one customer's failing card, retried
three times and re-sent by its saga, is one failure, never enough to open the circuit for
everybody; only many distinct operations failing together are (a provider outage).

State is per process (one breaker per worker): each worker learns on its own that the
provider is down, which costs at most ``min_calls`` operations per worker. That is cheap,
and sharing state through Redis would add a dependency to the payment path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Tracks the outcomes of recent operations and decides whether the next may go out."""

    def __init__(
        self,
        *,
        min_calls: int,
        failure_rate: float,
        window: float,
        cooldown: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if min_calls < 1:
            raise ValueError("a circuit breaker needs min_calls >= 1")
        if not 0 < failure_rate <= 1:
            raise ValueError("a circuit breaker needs 0 < failure_rate <= 1")
        self._min_calls = min_calls
        self._rate = failure_rate
        self._window = window
        self._cooldown = cooldown
        self._clock = clock
        # key -> (when it ended, whether it failed); dicts keep insertion order, oldest first.
        self._outcomes: dict[str, tuple[float, bool]] = {}
        self._failures = 0  # how many of _outcomes failed, kept as they come and go
        self._opened_at: float | None = None
        # The half-open trial's key and when it went out. A trial never reported (its record
        # cancelled by a rebalance) would shut the circuit for good, so it lapses after a
        # cool-down and the next operation becomes the trial.
        self._trial: tuple[str, float] | None = None

    @property
    def state(self) -> State:
        """The state as of now (an open circuit turns half-open once cooled down)."""
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self._cooldown:
            return "half_open"
        return "open"

    def allow(self, key: str) -> bool:
        """Whether operation ``key`` may go out now; in half-open, only the one trial may."""
        state = self.state
        if state == "closed":
            return True
        if state != "half_open":
            return False
        now = self._clock()
        if self._trial is None or self._trial[0] == key or now - self._trial[1] >= self._cooldown:
            self._trial = (key, now)
            return True
        return False

    def retry_after(self) -> float:
        """Seconds until the circuit half-opens (0 when closed or already half-open)."""
        if self._opened_at is None:
            return 0.0
        return max(self._cooldown - (self._clock() - self._opened_at), 0.0)

    def succeeded(self, key: str) -> None:
        """Operation ``key`` got an answer: the provider works, whatever state we were in."""
        if self._opened_at is not None:
            self._forget()
            self._opened_at = None
            self._trial = None
        self._record(key, failed=False)

    def failed(self, key: str) -> None:
        """Operation ``key`` timed out or hit provider errors on every attempt."""
        now = self._clock()
        if self._opened_at is not None:
            if self._trial is not None and key == self._trial[0]:  # the trial failed: cool down
                self._opened_at = now
                self._trial = None
            return  # already open: an operation let through before it opened
        self._record(key, failed=True)
        calls = len(self._outcomes)
        if calls >= self._min_calls and self._failures >= self._rate * calls:
            self._opened_at = now
            self._forget()

    def _record(self, key: str, *, failed: bool) -> None:
        now = self._clock()
        previous = self._outcomes.pop(key, None)
        if previous is not None:
            self._failures -= previous[1]
        self._outcomes[key] = (now, failed)
        self._failures += failed
        # Oldest first: drop from the front until one is inside the window (no copy of the
        # whole window per operation, which at 100 orders/s holds thousands of keys).
        while self._outcomes:
            oldest = next(iter(self._outcomes))
            at, oldest_failed = self._outcomes[oldest]
            if now - at < self._window:
                break
            del self._outcomes[oldest]
            self._failures -= oldest_failed

    def _forget(self) -> None:
        self._outcomes.clear()
        self._failures = 0
