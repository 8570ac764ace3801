"""Take-overs in-process, against a real Redis: suspects (jobs whose workers keep dying) and paused queues."""

from __future__ import annotations

import threading
import time

import pytest

from tempotask_django import JobStatus, get_job
from tempotask_django.storage.connection import get_default_store
from tempotask_django.worker import Worker
from tests.helpers import wait_until
from tests.testapp import tasks

pytestmark = pytest.mark.redis


def _run_in_thread(worker: Worker) -> threading.Thread:
    thread = threading.Thread(target=worker.run)
    thread.start()
    return thread


def _stop(workers: list[Worker], threads: list[threading.Thread]) -> None:
    for worker in workers:
        worker.request_stop()
    for thread in threads:
        thread.join(timeout=15)


def _make_suspect(store, queue: str, lease: float) -> None:
    """Give the waiting job at the head of ``queue`` two dead workers in a row (delivered twice)."""
    store.claim(queue, "dead-1", 1)
    time.sleep(lease + 0.05)
    assert len(store.reclaim(queue, "dead-2", 1).jobs) == 1


def _events(ledger) -> dict[tuple[str, str], float]:
    return {(entry["event"], entry["job"]): entry["t"] for entry in ledger.entries()}


def test_a_suspect_job_runs_alone_after_running_jobs_finish(store, ledger, settings):
    """A job taken over twice may be what kills its workers: the worker that takes it over drains
    (claims nothing new), runs it alone, then goes on, so if it kills this worker too, no other job
    dies with it."""
    settings.TEMPOTASK = {**settings.TEMPOTASK, "STALLED_TIMEOUT": 1}
    store = get_default_store()
    suspect = tasks.slow.enqueue({"seconds": 0.3})
    _make_suspect(store, "slow", lease=1)
    running = tasks.slow.enqueue({"seconds": 4})
    worker = Worker(["slow"], concurrency=4)
    thread = _run_in_thread(worker)
    try:
        wait_until(lambda: worker.running.draining, timeout=5, message="the worker to drain for the suspect")
        later = tasks.slow.enqueue({"seconds": 0.1})
        wait_until(lambda: get_job(later).status == JobStatus.COMPLETED, timeout=10, message="the later job")
    finally:
        _stop([worker], [thread])
    events = _events(ledger)
    assert events[("end", running)] <= events[("start", suspect)]  # nothing ran beside the suspect
    assert events[("end", suspect)] <= events[("start", later)]
    assert get_job(suspect).status == JobStatus.COMPLETED


def test_a_suspect_drains_only_the_worker_that_takes_it_over(store, ledger, settings):
    """Two busy workers see the same suspect: one takes it over and drains for it, the other keeps
    claiming (a job enqueued meanwhile runs beside the long jobs, not after them)."""
    settings.TEMPOTASK = {**settings.TEMPOTASK, "STALLED_TIMEOUT": 1}
    store = get_default_store()
    suspect = tasks.slow.enqueue({"seconds": 0.2})
    _make_suspect(store, "slow", lease=1)
    workers = [Worker(["slow"], concurrency=2, name=f"busy-{n}") for n in range(2)]
    longs = []
    for worker in workers:
        longs.append(tasks.slow.enqueue({"seconds": 7}))
        worker.run_once(block=False)  # claims its long job
    assert [worker.running_count for worker in workers] == [1, 1]
    threads = [_run_in_thread(worker) for worker in workers]
    try:
        wait_until(lambda: any(w.running.draining for w in workers), timeout=6, message="a take-over of the suspect")
        time.sleep(1.5)  # several more take-over passes of each worker
        assert [worker.running.draining for worker in workers].count(True) == 1
        (holder,) = [worker for worker in workers if worker.running.draining]
        later = tasks.slow.enqueue({"seconds": 0.1})
        wait_until(lambda: get_job(later).status == JobStatus.COMPLETED, timeout=3, message="the later job")
        assert [get_job(job_id).status for job_id in longs] == [JobStatus.PROCESSING] * 2  # ran beside them
        wait_until(lambda: get_job(suspect).status == JobStatus.COMPLETED, timeout=15, message="the suspect")
        wait_until(lambda: not holder.running.draining and holder.running.alone is None, message="the holder to go on")
    finally:
        _stop(workers, threads)
    events = _events(ledger)
    assert get_job(suspect).worker == holder.name
    assert events[("end", longs[workers.index(holder)])] <= events[("start", suspect)]  # alone on its worker


def test_a_worker_stops_draining_when_its_suspect_is_no_longer_pending_for_it(store, ledger, settings):
    settings.TEMPOTASK = {**settings.TEMPOTASK, "STALLED_TIMEOUT": 1}
    store = get_default_store()
    suspect = tasks.slow.enqueue({"seconds": 0.2})
    _make_suspect(store, "slow", lease=1)
    long = tasks.slow.enqueue({"seconds": 8})
    worker = Worker(["slow"], concurrency=2)
    worker.run_once(block=False)  # claims the long job
    thread = _run_in_thread(worker)
    try:
        wait_until(lambda: worker.running.draining, timeout=6, message="the worker to drain for the suspect")
        assert store.delete_job("slow", suspect) == "processing"
        wait_until(lambda: not worker.running.draining, timeout=3, message="the drain to end")
        later = tasks.slow.enqueue({"seconds": 0.1})
        wait_until(lambda: get_job(later).status == JobStatus.COMPLETED, timeout=3, message="the later job")
        assert get_job(long).status == JobStatus.PROCESSING
    finally:
        _stop([worker], [thread])
    assert suspect not in {entry["job"] for entry in ledger.entries("start")}


def test_stalled_jobs_of_a_paused_queue_stay_put_until_it_is_resumed(store, ledger, settings):
    settings.TEMPOTASK = {**settings.TEMPOTASK, "STALLED_TIMEOUT": 1}
    store = get_default_store()
    job_id = tasks.slow.enqueue({"seconds": 0.1})
    store.claim("slow", "dead-worker", 1)
    store.pause_queue("slow")
    time.sleep(1.1)  # past STALLED_TIMEOUT
    worker = Worker(["slow"])
    try:
        worker.run_once(block=False)  # its first take-over pass
        worker.housekeeper.reclaim()
        time.sleep(0.3)
        job = get_job(job_id)
        assert (job.status, job.attempt, job.errors, job.worker) == (JobStatus.PROCESSING, 1, [], "dead-worker")
        assert worker.running_count == 0 and ledger.entries("start") == []
        store.resume_queue("slow")

        def completed() -> bool:
            worker.run_once(block=False)
            return get_job(job_id).status == JobStatus.COMPLETED

        wait_until(completed, timeout=5, message="the job to be taken over once resumed")
    finally:
        worker.request_stop()
        worker.shutdown()
    job = get_job(job_id)
    assert (job.attempt, [error["type"] for error in job.errors], job.worker) == (2, ["Stalled"], worker.name)
