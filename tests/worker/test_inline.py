"""A worker of one job at a time runs its sync jobs on the finisher's thread, between two records
(no job thread, no thread hand-off per job), with every guarantee of the threaded worker: each
outcome recorded promptly even while a longer job runs after it, time limits, cancels, the hard
stop, a clean stop that gives prefetched jobs back."""

from __future__ import annotations

import threading

import pytest
import redis

from tempotask_django import JobStatus, cancel_job, get_job
from tempotask_django.worker import Worker, finisher
from tests.helpers import wait_until
from tests.testapp import tasks

pytestmark = pytest.mark.redis


@pytest.fixture
def fast_limits(settings):
    settings.TEMPOTASK = {**settings.TEMPOTASK, "TIMEOUT_GRACE": 1, "STALLED_TIMEOUT": 3}


@pytest.fixture
def running():
    """Starts ``worker.run()`` on a thread; every worker started is stopped at the end of the test
    (one left running would take the next test's jobs)."""
    started: list[tuple[Worker, threading.Thread]] = []

    def start(worker: Worker) -> threading.Thread:
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        started.append((worker, thread))
        return thread

    yield start
    for worker, thread in started:
        worker.request_stop()
        thread.join(timeout=15)


def stop(worker: Worker, thread: threading.Thread) -> None:
    worker.request_stop()
    thread.join(timeout=15)
    assert not thread.is_alive()


def status(job_id: str) -> JobStatus:
    return get_job(job_id).status


def test_jobs_run_on_the_finisher_thread_and_no_job_thread_starts(running, store, ledger):
    ids = [tasks.add.enqueue({"a": n, "b": 1}) for n in range(30)]
    worker = Worker(concurrency=1, prefetch=4, store=store)
    thread = running(worker)
    wait_until(lambda: all(status(job_id) == JobStatus.COMPLETED for job_id in ids), message="every job to complete")
    names = {t.name for t in threading.enumerate()}
    stop(worker, thread)
    assert "tempotask-finisher" in names and not any(name.startswith("tempotask-job") for name in names)
    assert [get_job(job_id).result for job_id in ids] == [n + 1 for n in range(30)]
    assert worker.jobs_done == 30


def test_an_outcome_is_recorded_while_the_job_after_it_still_runs(running, store, ledger, monkeypatch):
    """The late recorder records the batch gathered before a job that outlasts the gathering time."""
    monkeypatch.setattr(finisher, "PREFETCH_GATHER_SECONDS", 0.3)  # the quick job's outcome waits to be batched
    quick = tasks.slow.enqueue({"seconds": 0})
    long = tasks.slow.enqueue({"seconds": 3})
    worker = Worker(["slow"], concurrency=1, prefetch=1, store=store)
    thread = running(worker)
    wait_until(lambda: len(ledger.entries("start")) == 2, message="the long job to start")
    wait_until(lambda: status(quick) == JobStatus.COMPLETED, timeout=1.5, message="the quick job's outcome")
    assert status(long) == JobStatus.PROCESSING and len(ledger.entries("end")) == 1
    wait_until(lambda: status(long) == JobStatus.COMPLETED, timeout=10, message="the long job to complete")
    stop(worker, thread)


def test_an_async_jobs_outcome_is_recorded_while_a_sync_job_runs_inline(running, store, ledger):
    """With a prefetch an async job may run on the event loop beside the inline one: its outcome is
    recorded by the late recorder, not after the sync job."""
    long = tasks.slow.enqueue({"seconds": 3})
    quick = tasks.async_add.enqueue({"a": 1, "b": 2})
    worker = Worker(["slow", "default"], concurrency=1, prefetch=1, store=store)
    running(worker)
    wait_until(lambda: status(quick) == JobStatus.COMPLETED, timeout=1.5, message="the async job's outcome")
    assert status(long) == JobStatus.PROCESSING
    wait_until(lambda: status(long) == JobStatus.COMPLETED, timeout=10, message="the sync job to complete")


def test_a_time_limit_stops_an_inline_handler_and_the_next_job_runs(running, store, ledger, fast_limits):
    stuck = tasks.loops_past_limit.enqueue()  # JobTimeout at 0.5 s, 2 attempts, no retry delay
    after = tasks.add.enqueue({"a": 1, "b": 2})
    worker = Worker(concurrency=1, store=store)
    thread = running(worker)
    wait_until(lambda: status(stuck) == JobStatus.FAILED, timeout=10, message="its second attempt to fail")
    assert status(after) == JobStatus.COMPLETED
    assert get_job(stuck).attempt == 2
    assert len(ledger.entries("cleanup")) == 2  # its finally block ran each time
    assert worker.finisher.is_alive() and not worker.hard_stopped
    stop(worker, thread)


def test_a_cancel_stops_an_inline_handler_and_the_next_job_runs(running, store, ledger, fast_limits):
    looping = tasks.loops.enqueue()
    after = tasks.add.enqueue({"a": 1, "b": 2})
    worker = Worker(concurrency=1, store=store)
    thread = running(worker)
    wait_until(lambda: ledger.entries("start"), message="the loop to start")
    cancel_job(looping)
    wait_until(lambda: status(after) == JobStatus.COMPLETED, timeout=10, message="the job after it")
    assert status(looping) == JobStatus.CANCELLED
    assert worker.finisher.is_alive()
    stop(worker, thread)


def test_a_handler_ignoring_its_stop_is_abandoned_and_the_prefetched_job_goes_back(running, store, ledger, fast_limits):
    hung = tasks.ignores_stops.enqueue({"seconds": 8}, timeout=0.3)
    behind = tasks.add.enqueue({"a": 1, "b": 2})
    worker = Worker(concurrency=1, prefetch=1, store=store)
    thread = running(worker)
    wait_until(lambda: worker.hard_stopped, timeout=6, message="the hard stop")
    thread.join(timeout=10)
    assert not thread.is_alive()
    job = get_job(hung)
    assert job.status == JobStatus.FAILED and "(hard)" in job.errors[-1]["message"]
    assert (status(behind), get_job(behind).attempt) == (JobStatus.WAITING, 0)  # back at once, never started
    assert store.inspect.queue_stats("default").processing == 0


def test_a_stopping_worker_finishes_its_job_and_gives_the_prefetched_ones_back(running, store, ledger):
    first = tasks.slow.enqueue({"seconds": 0.5})
    behind = [tasks.slow.enqueue({"seconds": 0}) for _ in range(3)]
    worker = Worker(["slow"], concurrency=1, prefetch=3, store=store)
    thread = running(worker)
    wait_until(lambda: ledger.entries("start"), message="the first job to start")
    stop(worker, thread)
    assert status(first) == JobStatus.COMPLETED
    assert [status(job_id) for job_id in behind] == [JobStatus.WAITING] * 3
    assert store.inspect.queue_stats("slow").processing == 0


def test_a_stop_while_a_job_runs_inline_is_bounded_when_redis_refuses_the_record(
    running, store, ledger, settings, monkeypatch
):
    """The stop does not record what was gathered on the stopping thread (its retries while Redis
    refuses would never end): the late recorder does, and the stop waits for it a bounded time."""
    settings.TEMPOTASK = {**settings.TEMPOTASK, "SHUTDOWN_TIMEOUT": 0}
    monkeypatch.setattr(finisher, "PREFETCH_GATHER_SECONDS", 5)  # the quick outcome waits, gathered
    quick = tasks.slow.enqueue({"seconds": 0})
    long = tasks.slow.enqueue({"seconds": 2})
    worker = Worker(["slow"], concurrency=1, prefetch=1, store=store)
    thread = running(worker)
    wait_until(lambda: len(ledger.entries("start")) == 2, message="the long job to start")

    def refused(*args, **kwargs):
        raise redis.ConnectionError("Connection refused")

    monkeypatch.setattr(worker.store, "finish_and_claim", refused)
    worker.request_stop()
    thread.join(timeout=15)  # the finisher's stop waits 10 s at most for a record, as for its thread
    assert not thread.is_alive()
    monkeypatch.undo()  # Redis answers again: the late recorder records the quick job's outcome
    wait_until(lambda: status(quick) == JobStatus.COMPLETED, timeout=10, message="the gathered outcome")
    # Still leased to the stopped worker; in this process its thread lives on and records it when
    # it returns (a process that exits would leave it to a take-over after STALLED_TIMEOUT).
    wait_until(lambda: status(long) == JobStatus.COMPLETED, timeout=10, message="the long job's outcome")
    assert get_job(long).attempt == 1


def test_the_hard_stop_records_the_outcomes_gathered_before_the_stuck_job(
    running, store, ledger, fast_limits, monkeypatch
):
    """What ended before the stuck job is recorded, not given back to run again."""
    monkeypatch.setattr(finisher, "PREFETCH_GATHER_SECONDS", 5)  # the quick outcome waits, gathered
    quick = tasks.slow.enqueue({"seconds": 0})
    hung = tasks.ignores_stops.enqueue({"seconds": 8}, timeout=0.3, queue="slow")
    worker = Worker(["slow"], concurrency=1, prefetch=1, store=store)
    thread = running(worker)
    wait_until(lambda: worker.hard_stopped, timeout=6, message="the hard stop")
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert (status(quick), get_job(quick).attempt) == (JobStatus.COMPLETED, 1)
    assert status(hung) == JobStatus.FAILED
