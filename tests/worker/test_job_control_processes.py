"""Time limits and cancel with real ``runworkers`` processes: the hard stop replaces the process, and
a cancel reaches whichever process runs the job."""

from __future__ import annotations

import signal
import time

import pytest

from tempotask_django import JobStatus, cancel_job, get_job
from tests.helpers import wait_until
from tests.testapp import tasks

pytestmark = [pytest.mark.redis, pytest.mark.slow]

FAST = {"TIMEOUT_GRACE": 1, "STALLED_TIMEOUT": 30}


def test_a_single_worker_process_restarts_itself_after_a_hard_stop(workers, ledger):
    hung = tasks.blocks_in_c.enqueue({"seconds": 60}, timeout=0.5)
    process = workers.start("--concurrency", "2", overrides=FAST)
    wait_until(lambda: ledger.entries("start"), timeout=15, message="the hung job to start")
    bystander = tasks.loops.enqueue()
    wait_until(lambda: len(ledger.entries("start")) == 2, message="the bystander to start")
    wait_until(lambda: get_job(hung).status == JobStatus.FAILED, timeout=10, message="the hung job to fail")
    assert "(hard)" in get_job(hung).errors[-1]["message"]
    # The same process (same pid: it replaced itself) runs the bystander again, at once.
    wait_until(lambda: len(ledger.entries("start")) == 3, timeout=10, message="the bystander to start again")
    again = ledger.entries("start")[2]
    assert again["job"] == bystander and again["pid"] == process.pid and again["attempt"] == 1
    assert process.poll() is None
    assert "restarts itself" in workers.output(process)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0, workers.output(process)


def test_the_supervisor_replaces_a_child_after_a_hard_stop(workers, ledger):
    hung = tasks.blocks_in_c.enqueue({"seconds": 60}, timeout=0.5)
    process = workers.start("--processes", "2", "--concurrency", "1", overrides=FAST)
    wait_until(lambda: ledger.entries("start"), timeout=15, message="the hung job to start")
    first_pid = ledger.entries("start")[0]["pid"]
    wait_until(lambda: get_job(hung).status == JobStatus.FAILED, timeout=10, message="the hung job to fail")
    stopped_at = time.monotonic()
    wait_until(lambda: "asked to be replaced" in workers.output(process), timeout=5, message="the replacement")
    later = tasks.loops.enqueue(timeout=0.5)
    wait_until(lambda: get_job(later).status == JobStatus.FAILED, timeout=10, message="a later job to run")
    assert time.monotonic() - stopped_at < 10
    assert process.poll() is None
    assert first_pid != process.pid
    process.send_signal(signal.SIGTERM)  # the children stop with it (a SIGKILL would leave them running)
    assert process.wait(timeout=20) == 0, workers.output(process)


def test_a_cancel_reaches_the_process_that_runs_the_job(workers, ledger):
    first = workers.start("--concurrency", "2", overrides=FAST)
    second = workers.start("--concurrency", "2", overrides=FAST)
    ids = [tasks.loops.enqueue() for _ in range(4)]
    wait_until(lambda: len(ledger.entries("start")) == 4, timeout=15, message="the jobs to start")
    assert {entry["pid"] for entry in ledger.entries("start")} == {first.pid, second.pid}
    sent = time.monotonic()
    for job_id in ids:
        assert cancel_job(job_id) == JobStatus.PROCESSING
    wait_until(
        lambda: all(get_job(job_id).status == JobStatus.CANCELLED for job_id in ids),
        timeout=5,
        message="every job to be cancelled",
    )
    assert time.monotonic() - sent < 5  # well within a lease renewal (10 s): the notices, not the fallback
    assert len(ledger.entries("cleanup")) == 4
    assert first.poll() is None and second.poll() is None
