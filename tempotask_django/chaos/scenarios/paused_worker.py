"""A worker frozen (SIGSTOP) past its lease while it holds jobs, then resumed.

Another worker takes the jobs over; when the frozen one wakes up, its finishes must be refused
rather than acknowledge or overwrite the new owner's work.
"""

from __future__ import annotations

import random
import signal
import time
from typing import Any

from tempotask_django.chaos.lab import QUEUE, Lab
from tempotask_django.chaos.ledger import by_job
from tempotask_django.chaos.report import Result
from tempotask_django.chaos.scenarios import scenario
from tempotask_django.chaos.workload import outcome_figures, run_figures

REFUSED = "result discarded"


@scenario(
    "paused_worker",
    "a worker SIGSTOPped for twice the lease ({lease} s) while holding {jobs} jobs of {job_seconds} s, then resumed",
    short={"jobs": 4, "lease": 3, "job_seconds": 4},
    long={"jobs": 4, "lease": 3, "job_seconds": 4},
)
def paused_worker(lab: Lab, params: dict[str, Any], rng: random.Random) -> Result:
    from tempotask_django.chaos import handlers

    result = Result()
    jobs, lease = params["jobs"], params["lease"]
    lab.configure(STALLED_TIMEOUT=lease, SHUTDOWN_TIMEOUT=30)
    ids = handlers.work.enqueue_many([{"ms": int(params["job_seconds"] * 1000)}] * jobs)
    frozen = lab.workers(1, jobs)
    lab.wait_ledger(jobs, timeout=60)
    frozen.signal(signal.SIGSTOP)
    stopped = time.monotonic()
    other = lab.workers(1, jobs)
    time.sleep(max(0.0, 2 * lease - (time.monotonic() - stopped)))
    # On a loaded machine the other worker may take longer to start: resume only once it took over.
    lab.wait_ledger(2 * jobs, timeout=60)
    frozen.signal(signal.SIGCONT)
    result.figure("seconds frozen", time.monotonic() - stopped)
    lab.wait_drained(timeout=60)
    deadline = time.monotonic() + 30
    while _refused(frozen) < jobs and time.monotonic() < deadline:
        time.sleep(0.1)

    outcome_figures(lab, result, ids)
    runs = lab.ledger.entries()
    run_figures(result, runs)
    starts = by_job(runs, "start")
    result.figure("jobs the frozen worker held", sum(1 for items in starts.values() if items[0].pid == frozen.pid))
    result.must_equal("late finishes refused", _refused(frozen), jobs)
    overwritten = sum(1 for job_id in ids if (_result_pid(lab, job_id) or frozen.pid) == frozen.pid)
    result.must_equal("results written by the frozen worker", overwritten, 0)
    result.must_equal("frozen worker still running", frozen.alive(), True)
    for name, command in (("frozen worker", frozen), ("other worker", other)):
        code, _ = command.stop(timeout=60)
        result.must_equal(f"{name} exit code after SIGTERM", code, 0)
    return result


def _refused(command) -> int:
    return sum(1 for line in command.log_lines() if REFUSED in line.message)


def _result_pid(lab: Lab, job_id: str) -> int | None:
    job = lab.store.inspect.get_job(QUEUE, job_id)
    return job.result.get("pid") if job and isinstance(job.result, dict) else None
