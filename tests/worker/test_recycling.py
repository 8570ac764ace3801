"""``runworkers --max-jobs N`` and ``--max-memory MB``: real processes.

With ``--processes`` a process at its limit finishes its running jobs, stops claiming and exits with
REPLACE_EXIT_CODE; the supervisor starts another at once, so the pool keeps its size and every job
runs once. Alone (one process) the command exits 0 at the limit, after its running jobs.
"""

from __future__ import annotations

import signal
from collections import Counter

import pytest

from tempotask_django import JobStatus, get_job
from tempotask_django.storage.connection import get_default_store
from tempotask_django.worker.core import Worker
from tests.helpers import wait_until
from tests.testapp import tasks

pytestmark = pytest.mark.redis


def live_workers() -> int:
    return len(get_default_store().inspect.list_workers())


def all_completed(job_ids: list[str]) -> bool:
    return all(get_job(job_id).status == JobStatus.COMPLETED for job_id in job_ids)


@pytest.mark.slow
def test_max_jobs_with_processes_replaces_each_process_and_keeps_the_pool(workers, ledger):
    job_ids = tasks.record.enqueue_many([{"n": n} for n in range(20)])
    process = workers.start("--processes", "2", "--concurrency", "2", "--max-jobs", "3")
    wait_until(lambda: all_completed(job_ids), timeout=60, message="every job to complete")
    output = workers.output(process)
    assert output.count("asked to be replaced") >= 5, output  # 20 jobs, at most 3 per process
    assert "(--max-jobs); exiting" in output
    assert Counter(entry["job"] for entry in ledger.entries("ran")) == dict.fromkeys(job_ids, 1)
    wait_until(lambda: live_workers() == 2, timeout=30, message="the pool back at two processes")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0, output


@pytest.mark.slow
def test_max_memory_with_processes_replaces_a_process_after_its_running_jobs(workers, ledger):
    # Any worker holds more than 1 MB: each process runs what it claimed, then is replaced.
    job_ids = tasks.slow.enqueue_many([{"seconds": 1.5}] * 4)
    process = workers.start("--queues", "slow", "--processes", "2", "--max-memory", "1")
    wait_until(lambda: all_completed(job_ids), timeout=60, message="every job to complete")
    output = workers.output(process)
    assert "over --max-memory 1: finishing 1 running job(s), then exiting" in output, output
    assert output.count("asked to be replaced") >= 2, output
    assert len(ledger.entries("start")) == len(ledger.entries("end")) == 4  # each job once, to its end
    wait_until(lambda: live_workers() == 2, timeout=30, message="the pool back at two processes")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0, output


@pytest.mark.slow
def test_alone_max_memory_finishes_the_running_job_and_exits_0(workers, ledger):
    job_id = tasks.slow.enqueue({"seconds": 2})
    other = tasks.slow.enqueue({"seconds": 0})
    process = workers.start("--queues", "slow", "--max-memory", "1")
    assert process.wait(timeout=60) == 0, workers.output(process)
    assert get_job(job_id).status == JobStatus.COMPLETED
    assert get_job(other).status == JobStatus.WAITING  # not claimed once over the limit
    assert "replaced" not in workers.output(process)


def test_max_memory_is_only_checked_once_a_job_started(store, monkeypatch):
    monkeypatch.setattr("tempotask_django.worker.core.resident_mb", lambda: 10_000.0)
    worker = Worker(max_memory=100, burst=True)
    worker.run_once(block=False)
    assert not worker.stopping  # nothing started yet: an empty process over the limit waits for work
    tasks.add.enqueue({"a": 1, "b": 2})
    worker.run_once(block=False)  # starts the job
    worker._next_memory_check = 0.0
    worker.run_once(block=False)
    assert worker.stopping and worker.limit_reached
    worker.shutdown()
    assert worker.jobs_done == 1


def test_max_jobs_marks_the_limit_reached(store):
    for n in range(3):
        tasks.add.enqueue({"a": n, "b": 0})
    worker = Worker(max_jobs=2)
    worker.run()
    assert worker.limit_reached and worker.jobs_done == 2
