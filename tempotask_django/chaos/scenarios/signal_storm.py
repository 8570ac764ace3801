"""SIGTERM at a random instant into a busy worker, sometimes twice: it never hangs, and a job runs
twice only when a second SIGTERM cut its first run short (the documented fast exit, at least once).

Each run starts one ``runworkers`` process (concurrency 8) on short jobs, waits until it runs
them, then sends SIGTERM at a random instant: most land while the main thread or the finisher
holds a lock (claiming, starting, recording), which is what a handler taking a lock deadlocks on.
Some runs get a second SIGTERM 0-200 ms later, which must exit at once (code 1). Jobs a run
leaves behind are taken over by later runs; a final burst worker drains the rest.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from typing import Any

from tempotask_django.chaos.lab import Command, Lab
from tempotask_django.chaos.ledger import Run, by_job, percentile
from tempotask_django.chaos.report import Result
from tempotask_django.chaos.scenarios import scenario
from tempotask_django.chaos.workload import outcome_figures, run_figures

# Seconds a stopping worker waits for its running jobs; a run past this + HANG_MARGIN is a hang.
SHUTDOWN_TIMEOUT = 5
HANG_MARGIN = 5
# Seconds without a lease renewal before a job a forced exit left behind is taken over.
STALLED_TIMEOUT = 2
CONCURRENCY = 8


@scenario(
    "signal_storm",
    "{runs} runs: a worker busy with short jobs (concurrency 8) gets SIGTERM at a random instant, "
    "{second_percent}% of them a second SIGTERM 0-200 ms later",
    short={"runs": 12, "jobs_per_run": 200, "second_percent": 50},
    long={"runs": 100, "jobs_per_run": 200, "second_percent": 50},
)
def signal_storm(lab: Lab, params: dict[str, Any], rng: random.Random) -> Result:
    result = Result()
    runs, per_run = params["runs"], params["jobs_per_run"]
    lab.configure(
        STALLED_TIMEOUT=STALLED_TIMEOUT, SHUTDOWN_TIMEOUT=SHUTDOWN_TIMEOUT, MAX_JOBS_PER_STATUS=runs * per_run + 100
    )
    ids: list[str] = []
    hangs, graceful_not_zero = 0, 0
    exit_codes: dict[int, int] = {}
    stop_seconds: list[float] = []
    forced_pids: set[int] = set()  # workers a second SIGTERM made exit at once
    for number in range(runs):
        ids += _enqueue_jobs(per_run, rng)
        before = lab.ledger.size()
        worker = lab.workers(1, CONCURRENCY)
        if not lab.wait_ledger(before + 1, timeout=60):
            result.note(f"run {number}: the worker started no job within 60 s")
        time.sleep(rng.uniform(0.0, 1.0))  # a random instant of a busy worker
        second = rng.random() * 100 < params["second_percent"]
        started = time.monotonic()
        worker.signal(signal.SIGTERM)
        if second:
            time.sleep(rng.uniform(0.0, 0.2))
            worker.signal(signal.SIGTERM)
        code = _wait_exit(worker, SHUTDOWN_TIMEOUT + HANG_MARGIN - (time.monotonic() - started))
        if code is None:
            hangs += 1
            result.note(f"run {number} (pid {worker.pid}) hung; its log ends:\n{worker.tail(10)}")
            worker.kill()
            continue
        stop_seconds.append(time.monotonic() - started)
        exit_codes[code] = exit_codes.get(code, 0) + 1
        if code != 0 and not second:
            graceful_not_zero += 1
        if code != 0 and second:
            forced_pids.add(worker.pid)

    drain = lab.workers(1, CONCURRENCY, "--burst")
    drain_code = _wait_exit(drain, 120)
    result.figure("runs", runs)
    result.must_equal(f"hangs past SHUTDOWN_TIMEOUT + {HANG_MARGIN} s", hangs, 0)
    result.figure("exit codes (code: runs)", ", ".join(f"{code}: {n}" for code, n in sorted(exit_codes.items())))
    result.must_equal("runs with one SIGTERM that did not exit 0", graceful_not_zero, 0)
    result.figure("runs exited at once by a second SIGTERM", len(forced_pids))
    result.figure("seconds from SIGTERM to exit, p50", percentile(stop_seconds, 50))
    result.figure("seconds from SIGTERM to exit, max", max(stop_seconds) if stop_seconds else None)
    result.must_equal("final burst worker exit code", drain_code, 0)

    outcome_figures(lab, result, ids)
    entries = lab.ledger.entries()
    run_figures(result, entries)
    again, twice = _repeated_runs(entries, forced_pids)
    result.must_equal("jobs run twice", twice, 0)
    result.figure("jobs run again after a forced exit cut them", again)
    return result


def _enqueue_jobs(count: int, rng: random.Random) -> list[str]:
    """Short jobs: most take 0-10 ms (the loop claims, starts and records without a pause), one in
    eight 100-400 ms (some are still running when the signal lands, so a second one can cut them)."""
    from tempotask_django.chaos import handlers

    return handlers.work.enqueue_many(
        [{"ms": rng.randint(100, 400) if rng.random() < 0.125 else rng.randint(0, 10)} for _ in range(count)]
    )


def _wait_exit(command: Command, timeout: float) -> int | None:
    """The command's exit code, or None when it is still running after ``timeout`` seconds."""
    try:
        return command.process.wait(timeout=max(0.0, timeout))
    except subprocess.TimeoutExpired:
        return None


def _repeated_runs(entries: list[Run], forced_pids: set[int]) -> tuple[int, int]:
    """(jobs run again after a forced exit cut their run, jobs run twice otherwise).

    A second SIGTERM exits at once: the jobs it cuts run again elsewhere (at least once). Any other
    repeated run is a job run twice.
    """
    again, twice = 0, 0
    for starts in by_job(entries, "start").values():
        earlier = starts[:-1]
        if not earlier:
            continue
        if all(run.pid in forced_pids for run in earlier):
            again += 1
        else:
            twice += 1
    return again, twice
