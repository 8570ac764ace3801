"""Several ``runcron`` processes while Redis refuses writes for seconds at a time, at random instants
around ticks: out of memory (``maxmemory`` set below the memory in use, with ``noeviction``), then
every client connection killed over and over (``CLIENT KILL TYPE normal``). No tick may be lost or
fired twice: a tick the beats could not fire is offered again until Redis answers for it.

The ticks that must fire are those later than each schedule's registration and not later than the
end of the run (see ticks.py), counted from the Redis under test and from the ledger. The worker
that runs the tick jobs starts once the outages are over: what is measured is the beats, not the
worker's at-least-once runs under OOM.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

import redis

from tempotask_django.chaos.beat_records import (
    TickJobs,
    last_ticks,
    ledger_ticks,
    redis_fire_figures,
    registration_times,
    tick_jobs,
)
from tempotask_django.chaos.lab import Command, Lab
from tempotask_django.chaos.report import Result
from tempotask_django.chaos.scenarios import scenario
from tempotask_django.chaos.ticks import TickWindow, lag_figures, parse_tick_job, tick_figures
from tempotask_django.chaos.workload import stop_figures
from tempotask_django.storage.crons import CronStore

# Seconds allowed for the beats to start and register, and for the last ticks and jobs to settle.
START_TIMEOUT = 90
SETTLE_TIMEOUT = 60
KINDS = ("oom", "kill")
# How far from a tick an outage starts, s (either side).
AROUND_TICK = 0.3
# Pause between two CLIENT KILL calls during a "kill" outage, s.
KILL_EVERY = 0.002
BEAT_FAILED = "cron beat talking to Redis failed"


@dataclass
class Outage:
    kind: str  # "oom" or "kill"
    start_ms: int  # server clock
    end_ms: int = 0
    killed: int = 0  # connections closed by CLIENT KILL


@scenario(
    "beats_outages",
    "{beats} runcron processes, {every_second} every-second and {every_5} every-5-second schedules; "
    "{outages} Redis write outages of {outage} s (OOM, killed connections) at random instants around ticks",
    short={"beats": 3, "every_second": 2, "every_5": 2, "outages": 4, "outage": 3.0, "gap": (3.0, 5.0)},
    long={"beats": 3, "every_second": 3, "every_5": 3, "outages": 10, "outage": 3.0, "gap": (5.0, 15.0)},
)
def beats_outages(lab: Lab, params: dict[str, Any], rng: random.Random) -> Result:
    result = Result()
    periods = {f"second-{n}": 1 for n in range(params["every_second"])}
    periods.update({f"five-{n}": 5 for n in range(params["every_5"])})
    crons = {
        name: {"task": "chaos.tick", "cron": "* * * * * *" if period == 1 else "* * * * * */5"}
        for name, period in periods.items()
    }
    lab.configure(CRONS=crons, CRON_BEAT_HEARTBEAT=1, MAX_JOBS_PER_STATUS=100_000)
    beat_commands = [lab.start("runcron", "--verbosity", "2", log_level="INFO") for _ in range(params["beats"])]
    if not _wait_started(lab, list(periods), params["beats"]):
        result.note(f"the beats did not all start and register within {START_TIMEOUT} s")

    # Its own client (one connection in its pool): CLIENT KILL ... SKIPME yes spares it.
    control = redis.Redis.from_url(lab.server.url, decode_responses=True)
    kinds = [KINDS[n % len(KINDS)] for n in range(params["outages"])]
    rng.shuffle(kinds)
    outages = []
    for kind in kinds:
        time.sleep(rng.uniform(*params["gap"]))
        _sleep_until_near_a_tick(control, rng)
        outages.append(_outage(control, kind, params["outage"]))
    time.sleep(3)

    until_ms = _server_ms(control)
    window = TickWindow(1, registration_times(lab, list(periods)), until_ms, periods)
    if not _wait_decided(lab, window):
        result.note(f"the window's last ticks were not all decided within {SETTLE_TIMEOUT} s")
    for number, command in enumerate(beat_commands):
        code, _ = command.stop(timeout=30)
        result.must_equal(f"beat {number + 1} exit code after SIGTERM", code, 0)
    workers = lab.workers(1, 4)
    if not lab.wait_drained(timeout=SETTLE_TIMEOUT):
        result.note(f"the tick jobs were not all run within {SETTLE_TIMEOUT} s")

    jobs = tick_jobs(lab, list(periods))
    result.must_equal("schedules registered", len(window.since_ms), len(periods))
    result.figure("outages (kind, length ms)", [(o.kind, o.end_ms - o.start_ms) for o in outages])
    result.figure("connections killed per kill outage", [o.killed for o in outages if o.kind == "kill"])
    seen, ledger = jobs.seen, ledger_ticks(lab.ledger.entries())
    expected = window.expected()
    result.must_equal("ticks lost (expected, fired by neither Redis nor the ledger)", _lost(expected, seen, ledger), 0)
    result.must_equal("ticks fired twice (Redis + ledger)", _twice(seen) + _twice(ledger), 0)
    tick_figures(result, window, {"Redis": seen, "ledger": ledger})
    redis_fire_figures(result, jobs)
    lag_figures(result, jobs.lags_ms(window))
    worst = [_worst_lag_ms(jobs, window, outage) for outage in outages]
    result.figure("worst fire lag after each outage, ms", worst)
    result.figure("worst fire lag after an outage, ms", max((lag for lag in worst if lag is not None), default=None))
    result.figure("error streaks logged by each beat", [_failures(command) for command in beat_commands])
    result.figure("ticks fired by each beat (its log)", [_fired_lines(command) for command in beat_commands])
    stop_figures(result, workers)
    return result


def _outage(control: redis.Redis, kind: str, seconds: float) -> Outage:
    """Make Redis refuse the beats' writes for ``seconds``: OOM, or every other connection killed."""
    outage = Outage(kind, _server_ms(control))
    deadline = time.monotonic() + seconds
    if kind == "oom":
        saved = [str(control.config_get(name)[name]) for name in ("maxmemory", "maxmemory-policy")]
        used = int(control.info("memory")["used_memory"])
        control.config_set("maxmemory-policy", "noeviction")
        control.config_set("maxmemory", max(1, used // 2))
        try:
            time.sleep(max(0.0, deadline - time.monotonic()))
        finally:
            control.config_set("maxmemory", saved[0])
            control.config_set("maxmemory-policy", saved[1])
    else:
        while time.monotonic() < deadline:
            outage.killed += int(control.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"))
            time.sleep(KILL_EVERY)
    outage.end_ms = _server_ms(control)
    return outage


def _sleep_until_near_a_tick(control: redis.Redis, rng: random.Random) -> None:
    """Sleep until a random instant within AROUND_TICK s of a tick: of the every-5-second schedules
    half of the time, else of the every-second ones (by the server clock)."""
    now = _server_ms(control) / 1000
    period = 5 if rng.random() < 0.5 else 1
    tick = (int(now) // period + 1) * period
    target = tick + rng.uniform(-AROUND_TICK, AROUND_TICK)
    if target <= now:
        target += period
    time.sleep(target - now)


def _server_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def _lost(expected: set[tuple[str, int]], *sources: Any) -> int:
    return sum(1 for tick in expected if all(source[tick] == 0 for source in sources))


def _twice(seen: Any) -> int:
    return sum(count - 1 for count in seen.values() if count > 1)


def _worst_lag_ms(jobs: TickJobs, window: TickWindow, outage: Outage) -> int | None:
    """The latest fire among the ticks due during the outage or in the second after it, ms."""
    lags = []
    for job_id, at in jobs.enqueued_at.items():
        tick = parse_tick_job(job_id)
        if tick is None or window.before_registration(tick):
            continue
        if outage.start_ms <= tick[1] * 1000 <= outage.end_ms + 1000:
            lags.append(at - tick[1] * 1000)
    return max(lags) if lags else None


def _wait_started(lab: Lab, names: list[str], count: int) -> bool:
    """Wait until ``count`` beats publish a heartbeat and every schedule is registered."""
    crons = CronStore(lab.store)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if len(crons.beats()) >= count and len(registration_times(lab, names)) == len(names):
            return True
        time.sleep(0.1)
    return False


def _wait_decided(lab: Lab, window: TickWindow) -> bool:
    """Wait until every schedule's last decided tick reaches its last tick in the window."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while time.monotonic() < deadline:
        decided = last_ticks(lab, list(window.since_ms))
        if all(decided[name] >= window.last_due_ms(name) for name in window.since_ms):
            return True
        time.sleep(0.1)
    return False


def _failures(command: Command) -> int:
    return sum(1 for line in command.log_lines() if BEAT_FAILED in line.message)


def _fired_lines(command: Command) -> int:
    return sum(1 for line in command.log_lines() if ": enqueued job cron:" in line.message)
