"""Delay before the next attempt of a failed job."""

from __future__ import annotations

import random

# Jitter spreads retries of jobs that failed together (e.g. an outage) by +-10%.
JITTER = 0.1


def retry_delay_seconds(attempt: int, base: float, backoff: str, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed ``attempt`` (1-based).

    ``fixed``: ``base`` every time. ``exponential``: ``base * 2 ** (attempt - 1)`` with +-10% jitter,
    never more than ``cap``.
    """
    if backoff != "exponential" or base <= 0:
        return max(0.0, base)
    uniform = rng.uniform if rng is not None else random.uniform
    raw = base * 2 ** max(0, attempt - 1)
    return min(cap, raw * uniform(1 - JITTER, 1 + JITTER))
