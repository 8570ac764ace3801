"""Redis killed under load and restarted: with its append-only file (nothing may be lost), then empty."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from tempotask_django.chaos.lab import Command, Lab, LogLine
from tempotask_django.chaos.ledger import Run
from tempotask_django.chaos.report import Result
from tempotask_django.chaos.scenarios import scenario
from tempotask_django.chaos.workload import crashed_children, enqueue_work, outcome_figures, run_figures, stop_figures

STALLED_TIMEOUT = 2
NOISY_LEVELS = ("WARNING", "ERROR", "CRITICAL")
# Seconds after the workers are back that still count as part of an outage's log lines.
SETTLE = 2.0


@dataclass
class Outage:
    down: float  # epoch seconds
    up: float
    empty: bool
    back: float | None = None  # first job started after it by every worker process


@scenario(
    "redis_restarts",
    "Redis killed under load and restarted twice with AOF, then once restarted empty ({jobs:,} jobs, "
    "outages of {outage} s)",
    short={"jobs": 1500, "after_empty": 300, "outage": 1.5, "processes": 2, "concurrency": 4, "max_ms": 10},
    long={"jobs": 6000, "after_empty": 1000, "outage": 3.0, "processes": 2, "concurrency": 4, "max_ms": 10},
    appendonly=True,
)
def redis_restarts(lab: Lab, params: dict[str, Any], rng: random.Random) -> Result:
    result = Result()
    jobs, outage = params["jobs"], params["outage"]
    lab.configure(STALLED_TIMEOUT=STALLED_TIMEOUT, MAX_JOBS_PER_STATUS=3 * jobs, SHUTDOWN_TIMEOUT=10)
    workers = lab.workers(params["processes"], params["concurrency"])
    outages: list[Outage] = []

    # 1. Two restarts with the AOF, while the workers are busy: every job must still finish.
    durable = enqueue_work(jobs, rng, params["max_ms"])
    for fraction in (0.3, 0.6):
        lab.wait_ledger(int(fraction * jobs * 2), timeout=120)
        outages.append(_restart(lab, outage, empty=False))
    lab.wait_drained(timeout=120 + jobs * 0.03)
    outcome_figures(lab, result, durable)

    # 2. A restart that loses everything (as without persistence), in the middle of a batch.
    before = lab.ledger.size()
    doomed = enqueue_work(jobs // 2, rng, params["max_ms"])
    lab.wait_ledger(before + jobs // 2, timeout=120)
    outages.append(_restart(lab, outage, empty=True))

    # 3. Jobs enqueued after it must all run: the workers recreate what they need by themselves.
    after = enqueue_work(params["after_empty"], rng, params["max_ms"])
    lab.wait_drained(timeout=120 + params["after_empty"] * 0.03)
    statuses = lab.statuses(after)
    result.must_equal("lost after the empty restart", sum(1 for s in statuses.values() if s != "completed"), 0)

    runs = lab.ledger.entries()
    ended = {run.job for run in runs if run.event == "end"}
    result.figure("jobs lost with the emptied Redis (expected)", sum(1 for job in doomed if job not in ended))
    run_figures(result, runs)
    _outage_figures(result, outages, runs, workers)
    result.must_equal("worker process exits", len(crashed_children(workers)), 0)
    stop_figures(result, workers)
    return result


def _restart(lab: Lab, down_for: float, *, empty: bool) -> Outage:
    down = time.time()
    lab.server.restart(empty=empty, down_for=down_for)
    return Outage(down, time.time(), empty)


def _outage_figures(result: Result, outages: list[Outage], runs: list[Run], workers: Command) -> None:
    starts = sorted((run for run in runs if run.event == "start"), key=lambda run: run.t)
    pids = set(workers.children())  # the worker processes (none may have exited)
    lines = [line for line in workers.log_lines() if line.level in NOISY_LEVELS]
    for number, outage in enumerate(outages, start=1):
        kind = "empty" if outage.empty else "AOF"
        first_by_pid: dict[int, float] = {}
        for run in starts:
            if run.t >= outage.up and run.pid not in first_by_pid:
                first_by_pid[run.pid] = run.t
        # Back when every worker process has started a job again.
        back = [first_by_pid.get(pid) for pid in pids]
        outage.back = None if None in back or not back else max(back)  # type: ignore[type-var]
        reconnect = outage.back - outage.up if outage.back else None
        result.figure(f"restart {number} ({kind}): reconnect time, s", reconnect)
    result.figure("error/warning log lines per second of outage", _lines_per_second(lines, outages))
    result.figure("error/warning log lines in the busiest second", _busiest_second(lines))
    result.figure("error/warning log lines in all", len(lines))


def _lines_per_second(lines: list[LogLine], outages: list[Outage]) -> float:
    total_lines, total_seconds = 0, 0.0
    for outage in outages:
        end = (outage.back or outage.up) + SETTLE
        total_lines += sum(1 for line in lines if outage.down <= line.t <= end)
        total_seconds += end - outage.down
    return total_lines / total_seconds if total_seconds else 0.0


def _busiest_second(lines: list[LogLine]) -> int:
    per_second: dict[int, int] = {}
    for line in lines:
        per_second[int(line.t)] = per_second.get(int(line.t), 0) + 1
    return max(per_second.values(), default=0)
