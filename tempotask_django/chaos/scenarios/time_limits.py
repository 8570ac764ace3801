"""Hanging jobs stopped by their time limit: each is recorded failed (JobTimeout, hard) within
timeout + TIMEOUT_GRACE + 1 s of its start, the worker process that held it is replaced at once,
and the ordinary jobs it was running beside them go back and complete (none lost, none failed).

The hanging jobs sleep in C code, which no exception raised from Python interrupts: each one
takes the hard stop. Durations come from the job records (the Redis clock), process restarts from
the worker logs (each worker process logs its start, the abandoning one logs the hard stop).
"""

from __future__ import annotations

import random
import time
from typing import Any

from tempotask_django.chaos.lab import QUEUE, Lab
from tempotask_django.chaos.ledger import percentile
from tempotask_django.chaos.report import Result
from tempotask_django.chaos.scenarios import scenario
from tempotask_django.chaos.workload import run_figures

HARD_STOP = "did not stop within TIMEOUT_GRACE"
STARTED = "started: queues"


@scenario(
    "time_limits",
    "{hanging} jobs hanging in C code with timeout={timeout} s (TIMEOUT_GRACE={grace} s) among {others} jobs of "
    "{work_ms} ms, on {processes} processes x {concurrency}",
    short={"hanging": 100, "others": 200, "timeout": 1, "grace": 1, "work_ms": 300, "processes": 4, "concurrency": 30},
    long={"hanging": 300, "others": 2000, "timeout": 1, "grace": 2, "work_ms": 300, "processes": 4, "concurrency": 30},
)
def time_limits(lab: Lab, params: dict[str, Any], rng: random.Random) -> Result:
    from tempotask_django.chaos import handlers

    result = Result()
    timeout, grace = params["timeout"], params["grace"]
    lab.configure(TIMEOUT_GRACE=grace, STALLED_TIMEOUT=30, SHUTDOWN_TIMEOUT=10)
    kinds = ["hang"] * params["hanging"] + ["work"] * params["others"]
    rng.shuffle(kinds)
    hanging: list[str] = []
    others: list[str] = []
    for kind in kinds:  # interleaved, so ordinary jobs run beside the hanging ones
        if kind == "hang":
            hanging.append(handlers.hang.enqueue({"seconds": 3600}, timeout=timeout))
        else:
            others.append(handlers.work.enqueue({"ms": params["work_ms"]}))
    command = lab.workers(params["processes"], params["concurrency"], "--verbosity", "2", log_level="INFO")
    drained = lab.wait_drained(timeout=120)
    result.must_equal("queue drained", drained, True)

    statuses = lab.statuses(hanging + others)
    hard = 0
    spans: list[float] = []
    for job_id in hanging:
        job = lab.store.inspect.get_job(QUEUE, job_id)
        if job is None or job.status != "failed" or not job.errors:
            continue
        last = job.errors[-1]
        if last.get("type", "").endswith("JobTimeout") and "(hard)" in last.get("message", ""):
            hard += 1
        if job.started_at and job.finished_at:
            spans.append((job.finished_at - job.started_at).total_seconds())
    result.must_equal("hanging jobs failed with JobTimeout (hard)", hard, len(hanging))
    result.figure("start to failed, median s", percentile(spans, 0.5) if spans else None)
    worst = max(spans) if spans else None
    result.figure("start to failed, worst s", worst)
    result.must_equal(
        f"every one failed within timeout + grace + 1 s ({timeout + grace + 1} s)",
        worst is not None and worst <= timeout + grace + 1,
        True,
    )
    completed = sum(1 for job_id in others if statuses[job_id] == "completed")
    result.must_equal("ordinary jobs completed (none lost, none failed)", completed, len(others))
    retried = sum(1 for job in lab.store.inspect.get_jobs(QUEUE, others) if job.attempt > 1)
    result.must_equal("ordinary jobs with an attempt counted twice", retried, 0)

    # The last hard stop may still be under way: wait (a while) for every one to have its replacement.
    deadline = time.monotonic() + 10
    while True:
        lines = command.log_lines()
        stops = _first_per_pid([line for line in lines if HARD_STOP in line.message])
        starts = sorted((line.t, line.pid) for line in lines if STARTED in line.message)
        if len(starts) >= params["processes"] + len(stops) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    result.figure("worker processes replaced", len(stops))
    back = []
    for stopped_at, pid in stops:
        later = [t for t, other in starts if t > stopped_at and other != pid]
        if later:
            back.append(later[0] - stopped_at)
            starts.remove((later[0], next(other for t, other in starts if t == later[0])))
    result.figure("hard stop to a new worker process started, worst s", max(back) if back else None)
    within = bool(stops) and len(back) == len(stops) and max(back) <= 2
    result.must_equal("every replaced process back within 2 s", within, True)
    run_figures(result, lab.ledger.entries())
    code, _ = command.stop(timeout=30)
    result.must_equal("exit code after SIGTERM", code, 0)
    return result


def _first_per_pid(lines: list[Any]) -> list[tuple[float, int]]:
    first: dict[int, float] = {}
    for line in lines:
        first[line.pid] = min(first.get(line.pid, line.t), line.t)
    return sorted((t, pid) for pid, t in first.items())
