"""``prefetch``: a worker claims more jobs than it runs at once; they wait in it for a thread."""

from __future__ import annotations

import threading
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tempotask_django import JobStatus, cancel_job, get_job
from tempotask_django.management.commands import runworkers
from tempotask_django.worker import Worker
from tempotask_django.worker.finisher import PREFETCH_GATHER_SECONDS
from tempotask_django.worker.threads import JobThreads
from tests.helpers import wait_until
from tests.testapp import tasks

pytestmark = pytest.mark.redis


def most_at_once(entries: list[dict]) -> int:
    """The most jobs between their "start" and "end" ledger lines at one time."""
    running = most = 0
    for entry in entries:
        running += 1 if entry["event"] == "start" else -1
        most = max(most, running)
    return most


def started_in_a_thread(worker: Worker, ledger) -> threading.Thread:
    """``worker.run()`` on a thread of its own, once its first job started."""
    thread = threading.Thread(target=worker.run)
    thread.start()
    wait_until(lambda: ledger.entries("start"), message="the first job to start")
    return thread


def starts_and_ends(ledger) -> list[dict]:
    return [entry for entry in ledger.entries() if entry["event"] in ("start", "end")]


def test_one_claim_takes_the_prefetch_too_and_the_jobs_still_run_one_at_a_time(store, ledger):
    ids = [tasks.slow.enqueue({"seconds": 0.3}) for _ in range(5)]
    worker = Worker(["slow"], concurrency=1, prefetch=3, store=store)
    thread = started_in_a_thread(worker, ledger)
    # Four claimed at once (leased to the worker, shown as processing), one of them running.
    assert store.client.zcard(store.keys("slow").processing) == 4
    assert {get_job(job_id).worker for job_id in ids[:4]} == {worker.name}
    wait_until(lambda: all(get_job(job_id).status == JobStatus.COMPLETED for job_id in ids), message="all done")
    worker.request_stop()
    thread.join(timeout=10)
    assert most_at_once(starts_and_ends(ledger)) == 1
    assert [get_job(job_id).attempt for job_id in ids] == [1] * 5


def test_a_prefetched_jobs_time_limit_starts_with_its_handler_not_its_claim(store, ledger):
    first = tasks.slow.enqueue({"seconds": 0.8})
    behind = tasks.slow.enqueue({"seconds": 0.1}, timeout=0.5)  # waits 0.8 s for the thread: longer than its limit
    worker = Worker(["slow"], concurrency=1, prefetch=1, store=store, burst=True)
    worker.run()
    assert [entry["job"] for entry in ledger.entries("start")] == [first, behind]
    job = get_job(behind)
    assert (job.status, job.attempt, job.errors) == (JobStatus.COMPLETED, 1, [])


def test_a_stopping_worker_gives_its_prefetched_jobs_back_without_counting_an_attempt(store, ledger):
    running = tasks.slow.enqueue({"seconds": 0.6})
    prefetched = [tasks.slow.enqueue({"seconds": 0.1}) for _ in range(3)]
    worker = Worker(["slow"], concurrency=1, prefetch=3, store=store)
    thread = started_in_a_thread(worker, ledger)
    assert store.client.zcard(store.keys("slow").processing) == 4
    worker.request_stop()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert [entry["job"] for entry in ledger.entries("start")] == [running]
    assert get_job(running).status == JobStatus.COMPLETED
    for job_id in prefetched:
        job = get_job(job_id)
        assert (job.status, job.attempt) == (JobStatus.WAITING, 0)
    assert store.client.zcard(store.keys("slow").processing) == 0
    assert store.client.xpending(store.keys("slow").stream, "workers")["pending"] == 0
    # Another worker runs them, each once.
    Worker(["slow"], concurrency=4, store=store, burst=True).run()
    assert all(get_job(job_id).status == JobStatus.COMPLETED for job_id in prefetched)
    assert [get_job(job_id).attempt for job_id in prefetched] == [1, 1, 1]


def test_async_handlers_run_no_more_than_concurrency_at_once_with_a_prefetch(store, ledger):
    ids = [tasks.async_slow.enqueue({"seconds": 0.2}) for _ in range(6)]
    worker = Worker(["slow"], concurrency=2, prefetch=4, store=store, burst=True)
    started = time.monotonic()
    worker.run()
    assert all(get_job(job_id).status == JobStatus.COMPLETED for job_id in ids)
    assert most_at_once(starts_and_ends(ledger)) == 2
    assert time.monotonic() - started >= 0.55  # three rounds of two, not one of six


def test_a_queue_concurrency_bounds_its_jobs_claimed_prefetch_included(store, settings):
    settings.TEMPOTASK = {**settings.TEMPOTASK, "QUEUES": {"slow": {"CONCURRENCY": 1}}}
    worker = Worker(["slow", "default"], concurrency=2, prefetch=3, store=store)
    assert worker.slots.free() == 5
    assert worker.slots.free_in("slow") == 1  # its threads are shared: only this keeps it to one at a time
    assert worker.slots.free_in("default") == 5


@pytest.mark.parametrize("bad", [-1, 1.5, "2", True, None])
def test_a_bad_prefetch_is_refused_when_the_worker_is_made(store, bad):
    with pytest.raises(ValueError, match="prefetch must be a whole number of jobs, 0 or more"):
        Worker(["slow"], prefetch=bad, store=store)


def test_runworkers_refuses_a_negative_prefetch(store):
    with pytest.raises(CommandError, match="--prefetch: -1 must be 0 or more"):
        call_command(runworkers.Command(), "--prefetch", "-1")


def test_the_finisher_waits_for_more_outcomes_only_while_prefetched_jobs_wait_for_a_thread(store):
    worker = Worker(["slow"], concurrency=1, prefetch=2, store=store)
    finisher = worker.finisher
    backlog = [0]
    finisher.backlog = lambda: backlog[0]
    deadline = time.monotonic() + PREFETCH_GATHER_SECONDS
    assert finisher._gather_wait(deadline) == 0.0  # nothing waits: record now, the thread needs a refill
    backlog[0] = 2
    assert 0 < finisher._gather_wait(deadline) <= PREFETCH_GATHER_SECONDS
    assert finisher._gather_wait(time.monotonic() - 0.001) == 0.0  # waited long enough
    worker.request_stop()
    assert finisher._gather_wait(deadline) == 0.0  # a stopping worker records at once
    assert Worker(["slow"], concurrency=1, store=store).finisher.backlog is None  # without a prefetch: never waits


def test_a_gathering_finisher_sleeps_through_outcomes_until_the_last_waiting_job_is_taken(store):
    # Waking the finisher at each outcome cost a thread hand-off per job.
    finisher = Worker(["slow"], concurrency=1, prefetch=2, store=store).finisher
    backlog = [2]
    finisher.backlog = lambda: backlog[0]
    gathered = []
    deadline = time.monotonic() + 10  # far off: only the backlog's emptying ends this wait
    thread = threading.Thread(target=lambda: gathered.append(finisher._next_outcome(deadline)))
    thread.start()
    time.sleep(0.05)
    finisher.finished.put(("running", "outcome"))
    time.sleep(0.1)
    assert gathered == []  # still asleep
    backlog[0] = 0
    finisher.backlog_emptied()
    thread.join(timeout=2)
    assert gathered == [("running", "outcome")]


def test_the_job_thread_that_takes_the_last_waiting_job_says_so():
    release, ran, emptied = threading.Event(), [], []

    def run(name):
        if name == "a":
            release.wait(5)
        ran.append(name)

    threads = JobThreads(1, run)
    threads.on_empty = lambda: emptied.append(len(ran))
    threads.submit("a")
    wait_until(lambda: emptied, message="the first job to be taken")
    threads.submit("b")
    threads.submit("c")
    release.set()
    wait_until(lambda: len(ran) == 3, message="the three jobs to run")
    threads.stop()
    assert emptied == [0, 2]  # on taking "a" (nothing behind it) and "c", not "b"


def test_a_job_thread_whose_wake_up_call_fails_still_runs_the_job_it_took():
    """The job is taken from the queue before the wake-up call: whatever that call does, the job
    runs (and reports how it ended), and the thread goes on to the next one."""
    ran = []

    def wake_up():
        raise RuntimeError("the finisher could not be woken")

    threads = JobThreads(1, ran.append)
    threads.on_empty = wake_up
    threads.submit("a")
    threads.submit("b")
    wait_until(lambda: len(ran) == 2, message="both jobs to run")
    threads.stop()
    assert ran == ["a", "b"]


def test_a_prefetched_job_cancelled_before_its_turn_never_starts(store, ledger):
    first = tasks.slow.enqueue({"seconds": 0.8})
    behind = tasks.slow.enqueue({"seconds": 0.1})
    worker = Worker(["slow"], concurrency=1, prefetch=1, store=store)
    thread = started_in_a_thread(worker, ledger)
    assert get_job(behind).status == JobStatus.PROCESSING  # prefetched
    assert cancel_job(behind)
    wait_until(lambda: get_job(first).status == JobStatus.COMPLETED, message="the first job to end")
    wait_until(lambda: get_job(behind).status == JobStatus.CANCELLED, message="the cancel to be recorded")
    worker.request_stop()
    thread.join(timeout=10)
    assert [entry["job"] for entry in ledger.entries("start")] == [first]
