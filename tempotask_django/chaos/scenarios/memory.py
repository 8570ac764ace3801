"""Memory stays flat however many jobs run: history is bounded by MAX_JOBS_PER_STATUS."""

from __future__ import annotations

import random
import time
from typing import Any

from tempotask_django.chaos.lab import Lab
from tempotask_django.chaos.report import Result
from tempotask_django.chaos.scenarios import scenario
from tempotask_django.chaos.workload import FLAT, ended_jobs, enqueue_work, measure_memory, run_figures, stop_figures


@scenario(
    "memory",
    "{total:,} jobs ({fail_percent}% failing) with MAX_JOBS_PER_STATUS={history}: Redis memory and keys "
    "after {first:,} and after {total:,}",
    short={"first": 5000, "total": 25_000, "history": 300, "fail_percent": 10},
    long={"first": 10_000, "total": 100_000, "history": 300, "fail_percent": 10},
)
def memory(lab: Lab, params: dict[str, Any], rng: random.Random) -> Result:
    result = Result()
    first, total = params["first"], params["total"]
    ratio = params["fail_percent"] / 100
    lab.configure(MAX_JOBS_PER_STATUS=params["history"], STALLED_TIMEOUT=10)
    workers = lab.workers(2, 4)
    started = time.monotonic()

    enqueue_work(first, rng, fail_ratio=ratio)
    lab.wait_drained(timeout=60 + first * 0.02)
    small = measure_memory(lab)
    enqueue_work(total - first, rng, fail_ratio=ratio)
    lab.wait_drained(timeout=60 + total * 0.02)
    large = measure_memory(lab)
    result.figure("jobs per second", total / (time.monotonic() - started))

    for name in small:
        result.figure(f"{name} after {first:,}", small[name])
        result.figure(f"{name} after {total:,}", large[name])
    for name in ("used_memory", "keys", "bytes in keys"):
        growth = large[name] / small[name] - 1
        result.figure(f"{name} growth", f"{growth:+.2%}")
        result.must_equal(f"{name} flat within {FLAT:.0%}", abs(growth) <= FLAT, True)

    counts = lab.finished_counts()
    stats = lab.store.inspect.queue_stats("chaos")
    result.figure("completed / failed (counted)", f"{counts['completed']:,} / {counts['failed']:,}")
    result.figure("completed / failed (kept)", f"{stats.completed} / {stats.failed}")
    runs = lab.ledger.entries()
    # The records of most jobs are trimmed by now: Redis's side of the count is its per-minute counters.
    result.must_equal("lost (enqueued - ran), ledger", total - len(ended_jobs(runs)), 0)
    result.must_equal(
        "lost (enqueued - completed - failed), Redis counters", total - counts["completed"] - counts["failed"], 0
    )
    run_figures(result, runs)
    stop_figures(result, workers)
    return result
