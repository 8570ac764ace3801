"""Long use of child jobs leaves nothing behind: with ctx.add_job, memory and keys stay flat too."""

from __future__ import annotations

import random
import time
from typing import Any

from tempotask_django.chaos.lab import QUEUE, Lab
from tempotask_django.chaos.report import Result
from tempotask_django.chaos.scenarios import scenario
from tempotask_django.chaos.workload import ENQUEUE_BATCH, FLAT, ended_jobs, measure_memory, run_figures, stop_figures


@scenario(
    "soak",
    "{total:,} jobs, every {parent_every}th adding {children} child jobs, with MAX_JOBS_PER_STATUS={history}: "
    "Redis memory and keys at 10% and at 100%",
    short={"total": 10_000, "parent_every": 5, "children": 3, "history": 300},
    long={"total": 100_000, "parent_every": 5, "children": 3, "history": 300},
)
def soak(lab: Lab, params: dict[str, Any], rng: random.Random) -> Result:
    result = Result()
    total, children = params["total"], params["children"]
    first = total // 10
    lab.configure(MAX_JOBS_PER_STATUS=params["history"], STALLED_TIMEOUT=10)
    workers = lab.workers(2, 4)
    started = time.monotonic()

    parents = _enqueue_family(0, first, params["parent_every"], children)
    lab.wait_drained(timeout=60 + first * 0.05)
    small = {**measure_memory(lab), "children sets": _children_sets(lab)}
    # The rest goes in the same steps, each drained before the next: the same load at both measurements.
    for start in range(first, total, first):
        parents += _enqueue_family(start, min(total, start + first), params["parent_every"], children)
        lab.wait_drained(timeout=60 + first * 0.05)
    large = {**measure_memory(lab), "children sets": _children_sets(lab)}
    expected = total + parents * children
    result.figure("jobs (with children)", expected)
    result.figure("jobs per second", expected / (time.monotonic() - started))

    for name in small:
        result.figure(f"{name} at 10%", small[name])
        result.figure(f"{name} at 100%", large[name])
    result.figure("used_memory growth", f"{large['used_memory'] / small['used_memory'] - 1:+.2%}")
    for name in ("used_memory less client buffers and script cache", "keys", "bytes in keys"):
        growth = large[name] / small[name] - 1
        result.figure(f"{name} growth", f"{growth:+.2%}")
        result.must_equal(f"{name} flat within {FLAT:.0%}", abs(growth) <= FLAT, True)
    # Only kept parents have a children set, and it names only kept children.
    result.must_equal("children sets beyond the kept history", large["children sets"] <= params["history"], True)

    runs = lab.ledger.entries()
    result.must_equal("lost (enqueued - ran), ledger", expected - len(ended_jobs(runs)), 0)
    counts = lab.finished_counts()
    result.must_equal("lost (enqueued - completed - failed), Redis counters", expected - counts["completed"], 0)
    run_figures(result, runs)
    stop_figures(result, workers)
    return result


def _enqueue_family(start: int, end: int, parent_every: int, children: int) -> int:
    """Enqueue jobs ``start`` to ``end``: every ``parent_every``th a chaos.parent adding ``children``
    child jobs, the others chaos.work. Returns how many parents."""
    from tempotask_django.chaos import handlers

    parents = 0
    for batch_start in range(start, end, ENQUEUE_BATCH):
        numbers = range(batch_start, min(end, batch_start + ENQUEUE_BATCH))
        family = [n for n in numbers if n % parent_every == 0]
        handlers.parent.enqueue_many([{"children": children}] * len(family))
        handlers.work.enqueue_many([{"ms": 0}] * (len(numbers) - len(family)))
        parents += len(family)
    return parents


def _children_sets(lab: Lab) -> int:
    """How many children sets the chaos queue holds."""
    return sum(1 for _ in lab.client.scan_iter(f"{lab.store.keys(QUEUE).base}:children:*", count=1000))
