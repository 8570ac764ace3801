"""Retry delays: fixed, exponential with jitter, and the MAX_RETRY_DELAY cap. Pure: no Redis."""

from __future__ import annotations

import random

import pytest

from tempotask_django.worker.backoff import JITTER, retry_delay_seconds


class Endpoints(random.Random):
    """A generator whose uniform() returns the low or the high end of the range."""

    def __init__(self, high: bool) -> None:
        super().__init__()
        self.high = high

    def uniform(self, a: float, b: float) -> float:
        return b if self.high else a


@pytest.mark.parametrize("attempt", [1, 2, 5, 30])
def test_fixed_is_the_base_delay_every_time_without_jitter(attempt):
    assert {retry_delay_seconds(attempt, 5, "fixed", cap=3600, rng=random.Random(n)) for n in range(20)} == {5}


def test_exponential_doubles_within_ten_percent_either_side():
    for attempt, base in ((1, 2), (2, 4), (3, 8), (4, 16)):
        low = retry_delay_seconds(attempt, 2, "exponential", cap=3600, rng=Endpoints(high=False))
        high = retry_delay_seconds(attempt, 2, "exponential", cap=3600, rng=Endpoints(high=True))
        assert (low, high) == pytest.approx((base * (1 - JITTER), base * (1 + JITTER)))
    assert JITTER == 0.1


def test_jitter_spreads_the_delays_of_jobs_that_failed_together():
    rng = random.Random(1234)
    delays = [retry_delay_seconds(3, 10, "exponential", cap=3600, rng=rng) for _ in range(200)]
    assert all(36 <= delay <= 44 for delay in delays)
    assert len(set(delays)) == 200  # no two the same
    assert min(delays) < 38 and max(delays) > 42  # spread over the range, both sides of 40
    assert len({retry_delay_seconds(3, 10, "exponential", cap=3600) for _ in range(20)}) > 1  # the module's rng too


@pytest.mark.parametrize("attempt", [8, 20, 999])  # 999: the last retry ATTEMPTS' upper bound allows
def test_max_retry_delay_caps_the_exponential_delay(attempt):
    # 1 s doubling: 128 s at attempt 8 (115 s with the lowest jitter), ...: capped at 60 s.
    for high in (False, True):
        assert retry_delay_seconds(attempt, 1, "exponential", cap=60, rng=Endpoints(high)) == 60


def test_a_delay_under_the_cap_is_not_changed_by_it():
    assert retry_delay_seconds(3, 1, "exponential", cap=60, rng=Endpoints(high=True)) == pytest.approx(4.4)


def test_no_base_delay_means_no_delay():
    assert retry_delay_seconds(4, 0, "exponential", cap=60) == 0
    assert retry_delay_seconds(4, 0, "fixed", cap=60) == 0
