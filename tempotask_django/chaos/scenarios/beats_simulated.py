"""A simulated day of cron ticks: three beats whose host clocks are up to 60 s wrong, killed, frozen
and restarted every hour, on the real fire script and a real Redis (see simulation.py).

Each hour two of the three beats are disturbed (one killed and restarted later, one frozen), the
third runs on; so some beat is always up and no tick may be missed. Ticks are counted three ways:
the fire script's replies to the beats, the tick jobs in the Redis under test (with the schedules'
fire counters), and the ledger of a consumer that runs every job (so a job id is free again after
its job, and only the fire script's last-tick check can keep a late beat from firing a tick again).
Meanwhile a runtime schedule is created, edited (every minute <-> every 5 minutes), paused, resumed
and deleted at random moments, a few times an hour (runtime_edits.py): none of its ticks doubled or
lost, none fired while paused or deleted or by a version no longer in force.
"""

from __future__ import annotations

import datetime
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

from tempotask_django.chaos.beat_records import ledger_ticks, redis_fire_figures, registration_times, tick_jobs
from tempotask_django.chaos.lab import QUEUE, Lab
from tempotask_django.chaos.report import Result
from tempotask_django.chaos.runtime_edits import Editor, edit_figures, without
from tempotask_django.chaos.scenarios import scenario
from tempotask_django.chaos.simulation import MS, SimulatedBeat, Simulation
from tempotask_django.chaos.ticks import Tick, TickWindow, lag_figures, tick_figures
from tempotask_django.cron import CronBeat, CronSchedule, collect_schedules
from tempotask_django.storage.crons import CronStore
from tempotask_django.storage.records import Finish

# Every-minute schedules in zones with a daylight-saving change, an offset of 45 minutes, and
# half-hour DST: every real minute is a tick in each of them.
TIMEZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Kathmandu", "Australia/Lord_Howe")
HOUR_MS = 3600 * MS
# Disturbances of one hour: a kill of up to 15 minutes starting in its first 45, a freeze of up to
# 5 minutes starting in its first 55; so each ends within its hour, and at most two beats are down.
KILL_MS = (1 * MS, 900 * MS)
KILL_START_MS = (0, 2700 * MS)
FREEZE_MS = (1 * MS, 300 * MS)
FREEZE_START_MS = (0, 3300 * MS)
# The consumer runs the tick jobs this often (simulated).
CONSUME_EVERY_MS = 60 * MS
# Simulated time after the window, so that its last tick is fired whatever the wake-up delays.
TAIL_MS = 120 * MS
CONSUMER = "chaos-simulated-consumer"
# The runtime schedule, its expressions (period, s), and how many times an hour it changes (at most).
RUNTIME = "sim-runtime"
RUNTIME_EXPRESSIONS = {"* * * * *": 60, "*/5 * * * *": 300}
EDITS_PER_HOUR = (2, 8)


@scenario(
    "beats_simulated",
    "simulated clock: {hours} h of ticks of {schedules} every-minute schedules from {start}, {beats} beats "
    "with host clocks skewed by up to {skew} s, each hour one killed and one frozen",
    # Both windows hold Europe/Berlin's autumn change (2030-10-27 01:00 UTC). The short one is
    # shorter only for time: the cron arithmetic of ~1,300 beat steps per simulated hour costs ~1.5 s.
    short={"start": "2030-10-26T22:00:00+00:00", "hours": 6, "schedules": 5, "beats": 3, "skew": 60, "drift": 1e-3},
    long={"start": "2030-10-26T12:00:00+00:00", "hours": 24, "schedules": 5, "beats": 3, "skew": 60, "drift": 1e-3},
)
def beats_simulated(lab: Lab, params: dict[str, Any], rng: random.Random) -> Result:
    result = Result()
    lab.configure(MAX_JOBS_PER_STATUS=1_000_000)
    schedules = _schedules(params["schedules"])
    names = [schedule.name for schedule in schedules]
    start_ms = int(datetime.datetime.fromisoformat(params["start"]).timestamp() * MS)
    end_ms = start_ms + params["hours"] * HOUR_MS

    editor = Editor(
        CronStore(lab.store), RUNTIME, "chaos.tick", QUEUE, RUNTIME_EXPRESSIONS, random.Random(rng.random())
    )
    editor.add(start_ms)
    simulation = Simulation([], lambda: _consume(lab), start_ms)
    simulation.edit = lambda: _edit(editor, simulation)
    skews = _initial_skews(params["beats"], params["skew"], rng)
    for number, skew in enumerate(skews):
        beat = SimulatedBeat(
            number, skew, rng.uniform(-params["drift"], params["drift"]), _builder(lab, schedules), simulation.now_ms
        )
        simulation.beats.append(beat)
        beat.start()
        simulation.at(start_ms + rng.uniform(0, 5 * MS), "wake", number)
    _plan(simulation, start_ms, params, rng)
    simulation.run_until(end_ms - HOUR_MS // 4, rng)
    simulation.edit = None  # the last quarter of an hour: no more changes, the schedule active
    editor.settle(simulation.now_ms())
    simulation.run_until(end_ms + TAIL_MS, rng)
    _consume(lab)

    window = TickWindow(60, registration_times(lab, names), end_ms)
    jobs = tick_jobs(lab, [*names, RUNTIME])
    replies: Counter[Tick] = sum((beat.fired for beat in simulation.beats), Counter())
    consumer_runs = ledger_ticks(lab.ledger.entries())
    result.must_equal("schedules registered", len(window.since_ms), len(names))
    sources = {"fire replies": replies, "Redis": jobs.seen, "ledger": consumer_runs}
    tick_figures(result, window, {source: without(RUNTIME, seen) for source, seen in sources.items()})
    redis_fire_figures(result, jobs)
    edit_figures(result, editor, RUNTIME_EXPRESSIONS, sources, end_ms)
    lag_figures(result, jobs.lags_ms(window), prefix="simulated fire lag")
    result.figure("host clock skews at the start, s", [round(skew, 1) for skew in skews])
    result.figure("beat steps", sum(beat.steps for beat in simulation.beats))
    result.figure("beat restarts (after a kill)", sum(beat.restarts for beat in simulation.beats))
    result.figure("ticks fired by each beat", [sum(beat.fired.values()) for beat in simulation.beats])
    return result


def _edit(editor: Editor, simulation: Simulation) -> None:
    editor.change(simulation.now_ms())


def _schedules(count: int) -> list[CronSchedule]:
    crons = {
        f"sim-{n}": {"task": "chaos.tick", "cron": "* * * * *", "timezone": TIMEZONES[n % len(TIMEZONES)]}
        for n in range(count)
    }
    return [s for s in collect_schedules(raw={"CRONS": crons, "DEFAULT_QUEUE": QUEUE}) if s.name in crons]


def _builder(lab: Lab, schedules: list[CronSchedule]) -> Callable[[Callable[[], float]], CronBeat]:
    def build(clock: Callable[[], float]) -> CronBeat:
        return CronBeat(schedules, store=lab.store, clock=clock, kind="simulated")

    return build


def _initial_skews(beats: int, skew: float, rng: random.Random) -> list[float]:
    """The extremes first (one beat a minute behind, one a minute ahead), then random ones."""
    return [(-skew, skew)[n] if n < 2 else rng.uniform(-skew, skew) for n in range(beats)]


def _plan(simulation: Simulation, start_ms: int, params: dict[str, Any], rng: random.Random) -> None:
    """Each hour: one beat killed and one frozen (never the third), host clocks stepped, and the
    consumer every CONSUME_EVERY_MS."""
    beats = len(simulation.beats)
    for hour in range(params["hours"]):
        base = start_ms + hour * HOUR_MS
        killed, frozen = rng.sample(range(beats), 2)
        simulation.at(base + rng.uniform(*KILL_START_MS), "kill", killed, rng.uniform(*KILL_MS))
        simulation.at(base + rng.uniform(*FREEZE_START_MS), "freeze", frozen, rng.uniform(*FREEZE_MS))
        for _ in range(rng.randint(*EDITS_PER_HOUR)):
            simulation.at(base + rng.uniform(0, HOUR_MS), "edit")
        for number in range(beats):
            if rng.random() < 0.5:  # an NTP step to another wrong time
                skew = rng.uniform(-params["skew"], params["skew"])
                simulation.at(base + rng.uniform(0, HOUR_MS), "skew", number, skew)
    total = params["hours"] * HOUR_MS + TAIL_MS
    for offset in range(CONSUME_EVERY_MS // 2, total, CONSUME_EVERY_MS):
        simulation.at(start_ms + offset, "consume")


def _consume(lab: Lab) -> None:
    """Run every waiting tick job: record it in the ledger and complete it (its id is then free)."""
    while True:
        jobs = lab.store.claim(QUEUE, CONSUMER, 100).jobs
        if not jobs:
            return
        for job in jobs:
            lab.ledger.record("end", job["id"], int(job.get("attempt") or 0))
        lab.store.finish_and_claim(CONSUMER, [Finish(QUEUE, job["entry"], job["id"], True, "null") for job in jobs])
