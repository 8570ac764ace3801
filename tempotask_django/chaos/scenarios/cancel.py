"""Cancelling running jobs across worker processes: every one ends ``cancelled`` within a second
or two of its cancel, wherever it runs, without polling Redis per job (the cancel notice goes out
on the cancel channel; each worker's watchdog raises JobCancelled in the handler).

The time to ``cancelled`` is the job record's finish time minus its cancel time, both stamped by
the Redis clock (cancel_requested and finished_at).
"""

from __future__ import annotations

import random
from typing import Any

from tempotask_django.chaos.lab import QUEUE, Lab
from tempotask_django.chaos.ledger import by_job, percentile
from tempotask_django.chaos.report import Result
from tempotask_django.chaos.scenarios import scenario


@scenario(
    "cancel",
    "{jobs} running jobs cancelled, on {processes} processes x {concurrency}",
    short={"jobs": 200, "processes": 4, "concurrency": 50},
    long={"jobs": 1000, "processes": 4, "concurrency": 250},
)
def cancel(lab: Lab, params: dict[str, Any], rng: random.Random) -> Result:
    from tempotask_django import api
    from tempotask_django.chaos import handlers

    result = Result()
    jobs = params["jobs"]
    lab.configure(STALLED_TIMEOUT=30, SHUTDOWN_TIMEOUT=10)
    ids = handlers.spin.enqueue_many([{"seconds": 600}] * jobs)
    command = lab.workers(params["processes"], params["concurrency"])
    started = lab.wait_ledger(jobs, timeout=60)
    result.must_equal("every job running before the cancels", started, True)
    order = list(ids)
    rng.shuffle(order)
    for job_id in order:
        api.cancel_in_queue(QUEUE, job_id)
    drained = lab.wait_drained(timeout=30)
    result.must_equal("queue drained", drained, True)

    records = lab.store.inspect.get_jobs(QUEUE, ids)
    cancelled = [job for job in records if job.status == "cancelled"]
    result.must_equal("jobs cancelled", len(cancelled), jobs)
    delays = sorted(
        (job.finished_at - job.cancel_requested_at).total_seconds()
        for job in cancelled
        if job.finished_at and job.cancel_requested_at
    )
    median = percentile(delays, 0.5) if delays else None
    worst = delays[-1] if delays else None
    result.figure("cancel to cancelled, median s", median)
    result.figure("cancel to cancelled, p95 s", percentile(delays, 0.95) if delays else None)
    result.figure("cancel to cancelled, worst s", worst)
    result.must_equal("median <= 1 s", median is not None and median <= 1.0, True)
    result.must_equal("worst <= 2 s", worst is not None and worst <= 2.0, True)
    runs = lab.ledger.entries()
    starts, ends = by_job(runs, "start"), by_job(runs, "end")
    result.must_equal("handlers that ran their finally block", sum(1 for job_id in ids if job_id in ends), jobs)
    result.must_equal("jobs started again after their cancel", sum(1 for items in starts.values() if len(items) > 1), 0)
    result.figure("worker processes that ran them", len({run.pid for run in runs if run.event == "start"}))
    code, _ = command.stop(timeout=30)
    result.must_equal("exit code after SIGTERM", code, 0)
    return result
