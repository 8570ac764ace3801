"""What the beats did, read back from the Redis under test and from the ledger.

Two independent records of each tick: the Redis under test holds one job per tick (its id names the
tick, its ``enqueued_at`` is the fire time by the server clock) and each schedule's ``runs`` counter
(one per fire, so it sees a second fire of a tick even when that fire replaced the first one's job);
the ledger holds each run of a tick's handler (the ``chaos.tick`` task), written by the worker
process on its own server.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tempotask_django.chaos.lab import QUEUE, Lab
from tempotask_django.chaos.ledger import Run
from tempotask_django.chaos.report import Result
from tempotask_django.chaos.ticks import Tick, TickWindow, count_tick_jobs, parse_tick_job
from tempotask_django.job import JobStatus
from tempotask_django.storage.crons import CronStore


@dataclass(frozen=True)
class TickJobs:
    """The tick jobs in the Redis under test, and the fires its schedules counted."""

    enqueued_at: dict[str, int]  # job id -> enqueue time, ms (server clock)
    fires: int  # sum of the schedules' ``runs`` counters

    @property
    def seen(self) -> Counter[Tick]:
        return count_tick_jobs(self.enqueued_at)

    def lags_ms(self, window: TickWindow) -> list[float]:
        """Enqueue time minus tick of every tick job fired after its schedule's registration."""
        lags = []
        for job_id, at in self.enqueued_at.items():
            tick = parse_tick_job(job_id)
            if tick is not None and not window.before_registration(tick):
                lags.append(float(at - tick[1] * 1000))
        return lags


def registration_times(lab: Lab, names: Iterable[str]) -> dict[str, int]:
    """Each schedule's ``since`` (ms): the registration that ticks must be later than. Schedules
    not registered yet are left out."""
    crons = CronStore(lab.store)
    since = {}
    for name in names:
        state = crons.get(name)
        if state and state.get("since"):
            since[name] = int(state["since"])
    return since


def last_ticks(lab: Lab, names: Iterable[str]) -> dict[str, int]:
    """Each schedule's last decided tick, ms (0 when none yet)."""
    crons = CronStore(lab.store)
    return {name: int((crons.get(name) or {}).get("last_tick") or 0) for name in names}


def tick_jobs(lab: Lab, names: Iterable[str]) -> TickJobs:
    """Every tick job of the queue, whatever its status, and the schedules' fire counters."""
    keys = lab.store.keys(QUEUE)
    ids: list[str] = []
    for status in JobStatus:
        members = [str(member) for member in lab.client.zrange(keys.status(status), 0, -1)]
        ids += [job_id for job_id in members if parse_tick_job(job_id)]
    pipe = lab.client.pipeline(transaction=False)
    for job_id in ids:
        pipe.hget(keys.job(job_id), "enqueued_at")
    enqueued = {job_id: int(at or 0) for job_id, at in zip(ids, pipe.execute(), strict=True)}
    crons = CronStore(lab.store)
    fires = sum(int((crons.get(name) or {}).get("runs") or 0) for name in names)
    return TickJobs(enqueued, fires)


def ledger_ticks(runs: Sequence[Run]) -> Counter[Tick]:
    """Handler runs of tick jobs that reached their end, per tick."""
    return count_tick_jobs(run.job for run in runs if run.event == "end")


def redis_fire_figures(result: Result, jobs: TickJobs) -> None:
    """A second fire of a tick whose job had finished replaces that job: only the schedules' fire
    counters show it. They must equal the number of tick jobs."""
    result.figure("tick jobs in Redis", len(jobs.enqueued_at))
    result.must_equal(
        "fires beyond one per tick (Redis: schedules' runs - tick jobs)", jobs.fires - len(jobs.enqueued_at), 0
    )
