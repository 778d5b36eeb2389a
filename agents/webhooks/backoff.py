"""When a failed delivery is tried again: exponential schedule, full jitter.

The schedule (``MERCATO_WEBHOOK_RETRY_SCHEDULE``) gives the longest wait before each retry;
the wait itself is uniform in ``[0, that]`` ("full jitter"), so endpoints that failed
together (one outage) are not all retried in the same instant.
"""

from __future__ import annotations

import random
from collections.abc import Sequence


def next_delay(
    failed_attempts: int, schedule: Sequence[float], *, rng: random.Random | None = None
) -> float | None:
    """Seconds to wait after the ``failed_attempts``-th failure, or None: no retry left."""
    if failed_attempts < 1:
        raise ValueError("a delay follows at least one failed attempt")
    if failed_attempts > len(schedule):
        return None
    cap = schedule[failed_attempts - 1]
    return (rng or _RNG).uniform(0.0, cap)


def max_attempts(schedule: Sequence[float]) -> int:
    """Attempts a delivery gets in all: the first one and one per schedule entry."""
    return len(schedule) + 1


# Jitter needs no cryptographic quality, only independence between workers.
_RNG = random.Random()  # noqa: S311
