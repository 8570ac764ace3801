"""Counting cron ticks for the beats scenarios: which ticks had to fire, and how often each did.

A tick is named by its schedule and UTC epoch second, as in its job id ``cron:<name>:<epoch>``.
The ticks that must fire are those of the window ``(since, until]`` of each schedule: later than
its registration (``since``, from its hash in Redis: the fire script refuses earlier ticks) and not
later than the moment the scenario stopped looking (``until``). Ticks after ``until`` may still fire
before the beats are stopped; they are counted apart (neither required nor refused), and like every
tick they must not fire twice. Nothing here touches Redis.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from tempotask_django.chaos.ledger import percentile
from tempotask_django.chaos.report import Result

Tick = tuple[str, int]  # (schedule name, tick as a UTC epoch second)


def parse_tick_job(job_id: str) -> Tick | None:
    """The tick a cron job id ``cron:<name>:<epoch>`` names; None for any other id."""
    kind, _, rest = job_id.partition(":")
    name, _, epoch = rest.rpartition(":")
    if kind != "cron" or not name or not epoch.isdigit():
        return None
    return name, int(epoch)


def count_tick_jobs(job_ids: Iterable[str]) -> Counter[Tick]:
    """How many times each tick appears among ``job_ids`` (other ids are left out)."""
    return Counter(tick for tick in map(parse_tick_job, job_ids) if tick is not None)


@dataclass(frozen=True)
class TickWindow:
    """The ticks that must fire: every ``period_s`` seconds (aligned on the UTC epoch, as
    ``* * * * *``, ``* * * * * *`` and ``* * * * * */5`` are), per schedule after ``since_ms``, up to
    ``until_ms``. ``periods`` gives schedules of another period their own."""

    period_s: int
    since_ms: Mapping[str, int]  # schedule name -> registration time, ms (server clock)
    until_ms: int
    periods: Mapping[str, int] = field(default_factory=dict)  # schedule name -> its period, s

    def period_of(self, name: str) -> int:
        return self.periods.get(name, self.period_s)

    def last_due_ms(self, name: str) -> int:
        """The schedule's last tick in the window, ms."""
        period = self.period_of(name)
        return self.until_ms // 1000 // period * period * 1000

    def expected(self) -> set[Tick]:
        ticks: set[Tick] = set()
        for name, since in self.since_ms.items():
            period = self.period_of(name)
            after = since // 1000 + 1  # the first whole second later than ``since``
            first = -(-after // period) * period
            ticks.update((name, epoch) for epoch in range(first, self.last_due_ms(name) // 1000 + 1, period))
        return ticks

    def before_registration(self, tick: Tick) -> bool:
        """A tick no beat may fire: not later than its schedule's registration, or of no schedule."""
        name, epoch = tick
        return name not in self.since_ms or epoch * 1000 <= self.since_ms[name]

    def after(self, tick: Tick) -> bool:
        return tick[1] * 1000 > self.until_ms


@dataclass(frozen=True)
class TickCounts:
    """What one source (Redis, the ledger, the beats' replies) says about the window's ticks."""

    expected: int
    exactly_once: int  # expected ticks seen exactly once
    missed: int  # expected ticks never seen
    duplicates: int  # sightings beyond the first, of any tick
    before_registration: int  # ticks seen that no beat may fire
    after_window: int  # ticks later than the window (allowed)

    @classmethod
    def of(cls, window: TickWindow, seen: Counter[Tick]) -> TickCounts:
        expected = window.expected()
        return cls(
            expected=len(expected),
            exactly_once=sum(1 for tick in expected if seen[tick] == 1),
            missed=sum(1 for tick in expected if seen[tick] == 0),
            duplicates=sum(count - 1 for count in seen.values() if count > 1),
            before_registration=sum(1 for tick in seen if window.before_registration(tick)),
            after_window=sum(1 for tick in seen if window.after(tick) and not window.before_registration(tick)),
        )


def tick_figures(result: Result, window: TickWindow, sources: Mapping[str, Counter[Tick]]) -> None:
    """Per source: ticks fired exactly once (must be all), missed, duplicates and early ticks (must
    be 0); then the headline: expected ticks that every source saw exactly once."""
    expected = window.expected()
    result.figure("ticks expected in the window", len(expected))
    for source, seen in sources.items():
        counts = TickCounts.of(window, seen)
        result.must_equal(f"ticks fired exactly once ({source})", counts.exactly_once, len(expected))
        result.must_equal(f"ticks missed ({source})", counts.missed, 0)
        result.must_equal(f"ticks fired twice or more ({source})", counts.duplicates, 0)
        result.must_equal(f"ticks fired before registration ({source})", counts.before_registration, 0)
        result.figure(f"ticks after the window ({source}, allowed)", counts.after_window)
    agreed = sum(1 for tick in expected if all(seen[tick] == 1 for seen in sources.values()))
    result.must_equal("ticks fired exactly once (all sources)", agreed, len(expected))


def lag_figures(result: Result, lags_ms: list[float], prefix: str = "fire lag") -> None:
    """Fire lag (enqueue time minus tick, by the server clock): p50, p99, worst, and early fires."""
    result.figure(f"{prefix} p50, ms", percentile(lags_ms, 50))
    result.figure(f"{prefix} p99, ms", percentile(lags_ms, 99))
    result.figure(f"{prefix} max, ms", max(lags_ms) if lags_ms else None)
    result.must_equal("ticks enqueued before their time", sum(1 for lag in lags_ms if lag < 0), 0)
