"""A circuit breaker: stop calling a failing dependency, then probe it with one trial call.

closed → (``failures`` consecutive failures within ``window`` seconds) → open → (after
``cooldown`` seconds) → half-open: one trial call is let through; its success closes the
circuit, its failure opens it again for another cool-down.

State is per process (one breaker per worker): each worker learns on its own that the
provider is down, which costs at most ``failures`` calls per worker. That is cheap, and
sharing state through Redis would add a dependency to the payment path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Counts consecutive failures and decides whether the next call may go out."""

    def __init__(
        self,
        *,
        failures: int,
        window: float,
        cooldown: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures < 1:
            raise ValueError("a circuit breaker needs failures >= 1")
        self._threshold = failures
        self._window = window
        self._cooldown = cooldown
        self._clock = clock
        self._failures: list[float] = []
        self._opened_at: float | None = None
        self._trial_out = False

    @property
    def state(self) -> State:
        """The state as of now (an open circuit turns half-open once cooled down)."""
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self._cooldown:
            return "half_open"
        return "open"

    def allow(self) -> bool:
        """Whether a call may go out now; in half-open, only the one trial call may."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._trial_out:
            self._trial_out = True
            return True
        return False

    def succeeded(self) -> None:
        """A call worked: the provider is healthy again."""
        self._failures.clear()
        self._opened_at = None
        self._trial_out = False

    def failed(self) -> None:
        """A call timed out or hit a provider error."""
        now = self._clock()
        if self._opened_at is not None:
            # The half-open trial failed (or a call that started before opening): cool down again.
            self._opened_at = now
            self._trial_out = False
            return
        self._failures = [t for t in self._failures if now - t < self._window] + [now]
        if len(self._failures) >= self._threshold:
            self._opened_at = now
            self._failures.clear()
