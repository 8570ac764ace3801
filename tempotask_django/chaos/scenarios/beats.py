"""Several ``runcron`` processes on one Redis, one SIGKILLed and one SIGSTOPped past its heartbeat:
every tick of every schedule must still be enqueued, and run, exactly once. Meanwhile a runtime
schedule is edited (every second <-> every 5 seconds), paused, resumed, deleted and created again
every few seconds (runtime_edits.py): no tick doubled, none lost, none fired while paused or deleted
or by a version no longer in force.

The ticks that must fire are those later than each schedule's registration (its ``since`` in Redis)
and not later than the end of the run (see ticks.py). They are counted twice, independently: from
the Redis under test (one job per tick, and the schedules' fire counters) and from the ledger (one
handler run per tick, recorded by the worker process that ran it).
"""

from __future__ import annotations

import random
import signal
import threading
import time
from typing import Any

from tempotask_django.chaos.beat_records import (
    last_ticks,
    ledger_ticks,
    redis_fire_figures,
    registration_times,
    tick_jobs,
)
from tempotask_django.chaos.lab import QUEUE, Command, Lab
from tempotask_django.chaos.report import Result
from tempotask_django.chaos.runtime_edits import Editor, edit_figures, without
from tempotask_django.chaos.scenarios import scenario
from tempotask_django.chaos.ticks import TickWindow, lag_figures, tick_figures
from tempotask_django.chaos.workload import stop_figures
from tempotask_django.storage.crons import CronStore

# Seconds allowed for the beats to start and register, and for the last ticks and jobs to settle.
START_TIMEOUT = 90
SETTLE_TIMEOUT = 60
# The runtime schedule and its expressions (period, s).
RUNTIME = "runtime-edited"
RUNTIME_EXPRESSIONS = {"* * * * * *": 1, "* * * * * */5": 5}
# Seconds before the end when the edits stop (the schedule is left active, its last ticks counted).
EDITS_STOP_BEFORE = 6


@scenario(
    "beats",
    "{beats} runcron processes, {schedules} schedules {cron!r}, {seconds} s; one beat SIGKILLed, one "
    "SIGSTOPped for {stop_seconds} s (heartbeat {heartbeat} s)",
    short={
        "beats": 3,
        "schedules": 5,
        "cron": "* * * * * *",
        "period": 1,
        "seconds": 36,
        "heartbeat": 1,
        "kill_at": 8,
        "stop_at": 14,
        "stop_seconds": 6,
        "edit_every": 2.5,
    },
    long={
        "beats": 3,
        "schedules": 5,
        "cron": "* * * * *",
        "period": 60,
        "seconds": 600,
        "heartbeat": 10,
        "kill_at": 150,
        "stop_at": 300,
        "stop_seconds": 90,
        "edit_every": 10,
    },
)
def beats(lab: Lab, params: dict[str, Any], rng: random.Random) -> Result:
    result = Result()
    names = [f"beat-{number}" for number in range(params["schedules"])]
    crons = {name: {"task": "chaos.tick", "cron": params["cron"]} for name in names}
    lab.configure(CRONS=crons, CRON_BEAT_HEARTBEAT=params["heartbeat"], MAX_JOBS_PER_STATUS=100_000)
    workers = lab.workers(1, 4)
    beat_commands = [lab.start("runcron", "--verbosity", "2", log_level="INFO") for _ in range(params["beats"])]
    if not _wait_started(lab, names, params["beats"]):
        result.note(f"the beats did not all start and register within {START_TIMEOUT} s")
    started = time.monotonic()
    killed, stopped = rng.sample(beat_commands, 2)
    editor = Editor(
        CronStore(lab.store), RUNTIME, "chaos.tick", QUEUE, RUNTIME_EXPRESSIONS, random.Random(rng.random())
    )
    editing = threading.Thread(target=_edit, args=(editor, started + params["seconds"] - EDITS_STOP_BEFORE, params))
    editing.start()

    _sleep_until(started + params["kill_at"])
    killed.kill()
    _sleep_until(started + params["stop_at"])
    stopped.signal(signal.SIGSTOP)
    _sleep_until(started + params["stop_at"] + params["stop_seconds"])
    result.figure("beats listed at the end of the SIGSTOP", len(CronStore(lab.store).beats()))
    stopped.signal(signal.SIGCONT)
    result.figure("seconds SIGSTOPped", params["stop_seconds"])
    result.figure("heartbeat lifetime (3 heartbeats), s", 3 * params["heartbeat"])
    _sleep_until(started + params["seconds"])
    editing.join()

    until_ms = lab.store.server_time_ms()
    window = TickWindow(params["period"], registration_times(lab, names), until_ms)
    if not _wait_decided(lab, window, names) or not _wait_decided(lab, TickWindow(5, {}, until_ms), [RUNTIME]):
        result.note(f"the window's last ticks were not all decided within {SETTLE_TIMEOUT} s")
    alive = [command for command in beat_commands if command is not killed]
    for number, command in enumerate(alive):
        code, _ = command.stop(timeout=30)
        result.must_equal(f"live beat {number + 1} exit code after SIGTERM", code, 0)
    lab.wait_drained(timeout=SETTLE_TIMEOUT)

    jobs = tick_jobs(lab, [*names, RUNTIME])
    ledger = ledger_ticks(lab.ledger.entries())
    result.must_equal("schedules registered", len(window.since_ms), len(names))
    tick_figures(result, window, {"Redis": without(RUNTIME, jobs.seen), "ledger": without(RUNTIME, ledger)})
    redis_fire_figures(result, jobs)
    edit_figures(result, editor, RUNTIME_EXPRESSIONS, {"Redis": jobs.seen, "ledger": ledger}, until_ms)
    lag_figures(result, jobs.lags_ms(window))
    result.figure("ticks fired by each beat (its log)", [_fired_lines(command) for command in beat_commands])
    result.figure(
        "beat SIGKILLed, beat SIGSTOPped (in start order)",
        [beat_commands.index(killed) + 1, beat_commands.index(stopped) + 1],
    )
    stop_figures(result, workers)
    return result


def _edit(editor: Editor, stop_at: float, params: dict[str, Any]) -> None:
    """Change the runtime schedule every ``edit_every`` seconds (at random moments within a tick),
    then leave it active."""
    editor.add()
    while time.monotonic() + params["edit_every"] < stop_at:
        time.sleep(params["edit_every"] * editor.rng.uniform(0.5, 1.5))
        editor.change()
    editor.settle()


def _wait_started(lab: Lab, names: list[str], count: int) -> bool:
    """Wait until ``count`` beats publish a heartbeat and every schedule is registered."""
    crons = CronStore(lab.store)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if len(crons.beats()) >= count and len(registration_times(lab, names)) == len(names):
            return True
        time.sleep(0.1)
    return False


def _wait_decided(lab: Lab, window: TickWindow, names: list[str]) -> bool:
    """Wait until every schedule's last decided tick reaches the window's end (fired by a beat)."""
    last_due = window.until_ms // 1000 // window.period_s * window.period_s * 1000
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while time.monotonic() < deadline:
        if all(tick >= last_due for tick in last_ticks(lab, names).values()):
            return True
        time.sleep(0.1)
    return False


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


def _fired_lines(command: Command) -> int:
    return sum(1 for line in command.log_lines() if ": enqueued job cron:" in line.message)
