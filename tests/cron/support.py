"""What the cron tests share: clocks, local-time conversions, schedules built from settings, tick jobs."""

from __future__ import annotations

import datetime
import zoneinfo

from tempotask_django import list_jobs
from tempotask_django.cron import CronExpression, CronSchedule, collect_schedules

# A fixed day for the fake server clock: Monday 2030-01-07 10:00:00 UTC, in epoch seconds.
T0 = int(datetime.datetime(2030, 1, 7, 10, 0, tzinfo=datetime.UTC).timestamp())
MS = 1000


def epoch(local_time: str, tz: str) -> int:
    """The epoch second of a wall time (ISO 8601) in ``tz``."""
    return int(datetime.datetime.fromisoformat(local_time).replace(tzinfo=zoneinfo.ZoneInfo(tz)).timestamp())


def local(instant: int, tz: str) -> str:
    """An epoch second as an ISO 8601 wall time in ``tz``, with its offset."""
    return datetime.datetime.fromtimestamp(instant, zoneinfo.ZoneInfo(tz)).isoformat()


def next_ticks(cron: CronExpression, after: int, count: int) -> list[int]:
    """The next ``count`` ticks of ``cron`` after the epoch second ``after`` (fewer if it stops firing)."""
    found: list[int] = []
    while len(found) < count:
        tick = cron.next_after(found[-1] if found else after)
        if tick is None:
            break
        found.append(tick)
    return found


def only_schedules(**crons) -> list[CronSchedule]:
    """The schedules of these TEMPOTASK["CRONS"] entries (not the test app's own @task(cron=...) ones)."""
    return [s for s in collect_schedules(raw={"CRONS": crons}) if s.name in crons]


def cron_jobs(queue: str = "default") -> list[str]:
    """The ids of every job of ``queue``, whatever its status, sorted."""
    ids = []
    for status in ("waiting", "processing", "completed", "failed"):
        ids += [job.id for job in list_jobs(queue, status, limit=1000)]
    return sorted(ids)


class FakeClock:
    """A monotonic clock that moves only when a test sets ``now``."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
