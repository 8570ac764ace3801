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
from tempotask_django.chaos.workload import (
    crashed_children,
    ended_jobs,
    enqueue_work,
    outcome_figures,
    run_figures,
    stop_figures,
)

STALLED_TIMEOUT = 2
NOISY_LEVELS = ("WARNING", "ERROR", "CRITICAL")
RECONNECTED = "Redis is reachable again"
# Seconds after the workers are back that still count as part of an outage's log lines.
SETTLE = 2.0


@dataclass
class Outage:
    down: float  # epoch seconds
    up: float
    empty: bool
    back: float | None = None  # when every worker process had talked to Redis again


@scenario(
    "redis_restarts",
    "Redis killed under load and restarted twice with AOF, then once restarted empty ({jobs:,} jobs, "
    "outages of {outage} s)",
    short={"jobs": 1500, "after_empty": 300, "outage": 1.5, "processes": 2, "concurrency": 4, "max_ms": 10},
    long={"jobs": 6000, "after_empty": 1000, "outage": 3.0, "processes": 2, "concurrency": 4, "max_ms": 10},
    # fsync before every reply: with the default "everysec" Redis itself may lose the last second of
    # acknowledged writes when killed, and what this measures is what tempotask loses.
    appendonly=True,
    redis_args=["--appendfsync", "always"],
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
    ended = ended_jobs(lab.ledger.entries())
    result.must_equal("lost after the empty restart, ledger", sum(1 for job in after if job not in ended), 0)
    result.must_equal("lost after the empty restart, Redis", sum(1 for s in statuses.values() if s != "completed"), 0)

    _wait_reconnected(workers, outages[-1].up, timeout=30)  # idle processes may still be backing off
    runs = lab.ledger.entries()
    ended = ended_jobs(runs)
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
    starts = sorted(run.t for run in runs if run.event == "start")
    lines = workers.log_lines()
    pids = set(workers.children())  # the worker processes (none may have exited)
    for number, outage in enumerate(outages, start=1):
        kind = "empty" if outage.empty else "AOF"
        # Each worker process says when a call to Redis went through again after failing.
        back = {line.pid: line.t for line in reversed(lines) if line.t >= outage.up and RECONNECTED in line.message}
        outage.back = max(back.values()) if back and set(back) >= pids else None
        first_job = next((t for t in starts if t >= outage.up), None)
        result.figure(f"restart {number} ({kind}): every worker reconnected after, s", _since(outage.up, outage.back))
        result.figure(f"restart {number} ({kind}): first job started after, s", _since(outage.up, first_job))
    noisy = [line for line in lines if line.level in NOISY_LEVELS]
    result.figure("error/warning log lines per second of outage", _lines_per_second(noisy, outages))
    result.figure("error/warning log lines in the busiest second", _busiest_second(noisy))
    result.figure("error/warning log lines in all", len(noisy))


def _wait_reconnected(workers: Command, since: float, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        back = {line.pid for line in workers.log_lines() if line.t >= since and RECONNECTED in line.message}
        if back >= set(workers.children()):
            return
        time.sleep(0.2)


def _since(start: float, end: float | None) -> float | None:
    return None if end is None else end - start


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
