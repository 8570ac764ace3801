"""SIGTERM while jobs run: they finish, nothing runs twice, the command exits 0."""

from __future__ import annotations

import random
from typing import Any

from tempotask_django.chaos.lab import Lab
from tempotask_django.chaos.ledger import by_job
from tempotask_django.chaos.report import Result
from tempotask_django.chaos.scenarios import scenario
from tempotask_django.storage.keys import CONSUMER_GROUP


@scenario(
    "sigterm",
    "SIGTERM with {jobs} jobs of {seconds} s in flight ({processes} processes x {concurrency} threads)",
    short={"jobs": 8, "seconds": 2.0, "processes": 2, "concurrency": 4},
    long={"jobs": 8, "seconds": 5.0, "processes": 2, "concurrency": 4},
)
def sigterm(lab: Lab, params: dict[str, Any], rng: random.Random) -> Result:
    from tempotask_django.chaos import handlers

    result = Result()
    jobs, seconds = params["jobs"], params["seconds"]
    lab.configure(STALLED_TIMEOUT=30, SHUTDOWN_TIMEOUT=seconds * 3 + 10)
    ids = handlers.work.enqueue_many([{"ms": int(seconds * 1000)}] * jobs)
    workers = lab.workers(params["processes"], params["concurrency"])
    if not lab.wait_ledger(jobs, timeout=60):
        result.note(f"only {lab.ledger.size()} of {jobs} jobs started within 60 s")
    result.figure("jobs in flight at SIGTERM", len(by_job(lab.ledger.entries(), "start")))
    code, exit_seconds = workers.stop(timeout=seconds * 3 + 30)

    runs = lab.ledger.entries()
    starts, ends = by_job(runs, "start"), by_job(runs, "end")
    statuses = lab.statuses(ids)
    result.must_equal("finished", sum(1 for status in statuses.values() if status == "completed"), jobs)
    result.must_equal("handlers ended", len(ends), jobs)
    result.must_equal("re-run", sum(len(items) for items in starts.values()) - len(starts), 0)
    result.must_equal("exit code", code, 0)
    result.figure("seconds from SIGTERM to exit", exit_seconds)
    result.figure("job length, s", seconds)
    stream = lab.store.keys("chaos").stream
    result.must_equal("leases left behind", lab.pending(), 0)
    result.must_equal("consumers left behind", len(lab.client.xinfo_consumers(stream, CONSUMER_GROUP)), 0)
    return result
