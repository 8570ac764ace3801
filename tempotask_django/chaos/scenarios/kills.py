"""Worker processes SIGKILLed at random while they run jobs: nothing may be lost."""

from __future__ import annotations

import random
import signal
import time
from typing import Any

from tempotask_django.chaos.lab import Lab
from tempotask_django.chaos.report import Result
from tempotask_django.chaos.scenarios import scenario
from tempotask_django.chaos.workload import (
    delay_figures,
    enqueue_work,
    outcome_figures,
    reclaim_delays,
    run_figures,
    stop_figures,
    wait_children,
)

# Seconds without a lease renewal before a job is taken over (short, to keep the run fast).
STALLED_TIMEOUT = 2


@scenario(
    "kills",
    "{jobs:,} jobs, {processes} worker processes x {concurrency} threads, {kills} random SIGKILLs",
    short={"jobs": 2000, "kills": 5, "processes": 2, "concurrency": 4, "max_ms": 15},
    long={"jobs": 10_000, "kills": 20, "processes": 2, "concurrency": 4, "max_ms": 15},
)
@scenario(
    "kills_inline",
    "{jobs:,} jobs, {processes} worker processes of one job at a time (run on the finisher's thread, "
    "prefetch {prefetch}), {kills} random SIGKILLs",
    short={"jobs": 1000, "kills": 5, "processes": 2, "concurrency": 1, "prefetch": 8, "max_ms": 15},
    long={"jobs": 5000, "kills": 20, "processes": 2, "concurrency": 1, "prefetch": 8, "max_ms": 15},
)
def kills(lab: Lab, params: dict[str, Any], rng: random.Random) -> Result:
    result = Result()
    jobs = params["jobs"]
    lab.configure(STALLED_TIMEOUT=STALLED_TIMEOUT, MAX_JOBS_PER_STATUS=jobs + 100, SHUTDOWN_TIMEOUT=10)
    ids = enqueue_work(jobs, rng, params["max_ms"])
    # Kill at fixed points of progress (ledger lines: one start and one end per run), not at fixed times.
    kill_points = sorted(int(rng.uniform(0.05, 0.85) * jobs * 2) for _ in range(params["kills"]))

    started = time.monotonic()
    prefetch = ("--prefetch", str(params["prefetch"])) if params.get("prefetch") else ()
    workers = lab.workers(params["processes"], params["concurrency"], *prefetch)
    sent: list[tuple[float, int]] = []
    for point in kill_points:
        if not lab.wait_ledger(point, timeout=120):
            result.note(f"progress stalled before ledger line {point}; {len(sent)} kills sent")
            break
        victim = rng.choice(wait_children(workers, params["processes"]))
        sent.append((time.time(), victim))
        workers.signal(signal.SIGKILL, victim)
    drained = lab.wait_drained(timeout=60 + jobs * 0.03)
    result.figure("SIGKILLs sent", len(sent))
    result.figure("time to drain, s", time.monotonic() - started if drained else None)

    outcome_figures(lab, result, ids)
    runs = lab.ledger.entries()
    run_figures(result, runs)
    delay_figures(result, "reclaim delay", reclaim_delays(runs, sent))
    result.figure("STALLED_TIMEOUT, s", STALLED_TIMEOUT)
    stop_figures(result, workers)
    return result
