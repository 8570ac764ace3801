"""Rate and concurrency limits across several worker processes, measured by the Redis clock.

Both run ``chaos.work`` jobs enqueued with a limit (``Task.using``: a job carries its task's limits).
Starts and finishes are read from the job records (``started_at`` is written by the claim that
counts the start against the limit, ``finished_at`` by the finish that frees the slot), so the
figures use the clock the limits are enforced by.
"""

from __future__ import annotations

import random
import time
from typing import Any

from tempotask_django.chaos.lab import QUEUE, Lab
from tempotask_django.chaos.report import Result
from tempotask_django.chaos.scenarios import scenario
from tempotask_django.chaos.workload import outcome_figures

FINISHED = ("completed", "failed")


def records(lab: Lab, ids: list[str]) -> list[dict[str, str]]:
    """status, started_at and finished_at of each job (one pipeline per 5000 jobs)."""
    keys = lab.store.keys(QUEUE)
    found: list[dict[str, str]] = []
    for start in range(0, len(ids), 5000):
        pipe = lab.client.pipeline(transaction=False)
        for job_id in ids[start : start + 5000]:
            pipe.hmget(keys.job(job_id), "status", "started_at", "finished_at")
        for status, started, finished in pipe.execute():
            found.append({"status": status, "started_at": started, "finished_at": finished})
    return found


def max_in_window(starts: list[int], window_ms: int) -> int:
    """Most starts in any closed window of ``window_ms`` (two pointers over the sorted starts)."""
    starts = sorted(starts)
    best, first = 0, 0
    for last, start in enumerate(starts):
        while start - starts[first] > window_ms:
            first += 1
        best = max(best, last - first + 1)
    return best


def peak_overlap(intervals: list[tuple[int, int]]) -> int:
    """Most intervals open at once; an interval ending when another starts does not overlap it."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


@scenario(
    "rate_limit",
    "rate_limit {rate}/s over {processes} worker processes for {seconds} s",
    short={"rate": 50, "seconds": 10, "processes": 4, "concurrency": 4},
    long={"rate": 50, "seconds": 30, "processes": 4, "concurrency": 4},
)
def rate_limit(lab: Lab, params: dict[str, Any], rng: random.Random) -> Result:
    from tempotask_django.chaos import handlers

    result = Result()
    rate, seconds = params["rate"], params["seconds"]
    lab.configure(MAX_JOBS_PER_STATUS=100_000)  # every start stays readable from its record
    limited = handlers.work.using(rate_limit=f"{rate}/s")
    ids = limited.enqueue_many([{"ms": rng.randint(0, 20)} for _ in range(rate * (seconds + 5))])
    workers = lab.workers(params["processes"], params["concurrency"])
    if not lab.wait_ledger(1, timeout=60):
        result.note("no job started within 60 s")
    time.sleep(seconds + 1)
    code, _ = workers.stop(timeout=60)
    found = records(lab, ids)
    starts = sorted(int(r["started_at"]) for r in found if r["started_at"])
    window = [t for t in starts if t < starts[0] + seconds * 1000] if starts else []
    result.figure("jobs started", len(starts))
    peak = result.figure("max starts in any 1 s window (Redis clock)", max_in_window(starts, 1000))
    mean = result.figure(f"mean starts per second over the first {seconds} s", len(window) / seconds)
    result.must_equal(f"max starts in any 1 s window <= {rate}", peak <= rate, True)
    result.must_equal(f"mean rate >= {0.9 * rate:g}/s", mean >= 0.9 * rate, True)
    result.must_equal("jobs without a record", sum(1 for r in found if r["status"] is None), 0)
    result.must_equal("jobs left processing after the stop", sum(1 for r in found if r["status"] == "processing"), 0)
    result.must_equal("exit code after SIGTERM", code, 0)
    return result


@scenario(
    "concurrency_limit",
    "max_concurrency={limit} over {processes} worker processes, {jobs} jobs of {ms} ms",
    short={"limit": 3, "jobs": 240, "ms": 100, "processes": 4, "concurrency": 4},
    long={"limit": 3, "jobs": 900, "ms": 100, "processes": 4, "concurrency": 4},
)
def concurrency_limit(lab: Lab, params: dict[str, Any], rng: random.Random) -> Result:
    from tempotask_django.chaos import handlers

    result = Result()
    limit = params["limit"]
    lab.configure(MAX_JOBS_PER_STATUS=100_000)
    capped = handlers.work.using(max_concurrency=limit)
    ids = capped.enqueue_many([{"ms": params["ms"]} for _ in range(params["jobs"])])
    started = time.monotonic()
    workers = lab.workers(params["processes"], params["concurrency"])
    expected = params["jobs"] * params["ms"] / 1000 / limit
    if not lab.wait_drained(timeout=expected * 3 + 60):
        result.note(f"{lab.unfinished()} job(s) unfinished after {expected * 3 + 60:.0f} s")
    elapsed = time.monotonic() - started
    code, _ = workers.stop(timeout=60)
    outcome_figures(lab, result, ids)
    found = [r for r in records(lab, ids) if r["status"] in FINISHED and r["started_at"] and r["finished_at"]]
    peak = peak_overlap([(int(r["started_at"]), int(r["finished_at"])) for r in found])
    result.must_equal("max running at once (Redis clock)", peak, limit)
    handler_runs = _handler_intervals(lab)
    result.figure("max handlers running at once (worker clocks)", peak_overlap(handler_runs))
    result.figure("jobs per second", params["jobs"] / elapsed)
    result.figure("jobs per second at the limit (ideal)", limit * 1000 / params["ms"])
    result.must_equal("exit code after SIGTERM", code, 0)
    return result


def _handler_intervals(lab: Lab) -> list[tuple[int, int]]:
    """Each run's start and end as its handler recorded them (microseconds, the hosts' clocks)."""
    opened: dict[tuple[str, int], float] = {}
    intervals = []
    for run in lab.ledger.entries():
        key = (run.job, run.attempt)
        if run.event == "start":
            opened[key] = run.t
        elif run.event == "end" and key in opened:
            intervals.append((int(opened.pop(key) * 1e6), int(run.t * 1e6)))
    return intervals
