"""Time limits and cancel in an in-process worker, against a real Redis (docs/job-control.md)."""

from __future__ import annotations

import threading

import pytest

from tempotask_django import (
    InvalidJobState,
    JobNotFound,
    JobStatus,
    cancel_job,
    get_job,
    queue_stats,
    retry_job,
    signals,
)
from tempotask_django.worker import Worker
from tests.helpers import drain, wait_until
from tests.testapp import tasks

pytestmark = pytest.mark.redis

TIMEOUT_ERROR = "tempotask_django.exceptions.JobTimeout"
CANCEL_ERROR = "tempotask_django.exceptions.JobCancelled"


@pytest.fixture
def fast_limits(settings):
    settings.TEMPOTASK = {**settings.TEMPOTASK, "TIMEOUT_GRACE": 1, "STALLED_TIMEOUT": 3}


@pytest.fixture
def live_worker(store, fast_limits):
    """A Worker running in a thread, serving "default" and "slow"."""
    worker = Worker(["default", "slow"], concurrency=4)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    yield worker
    worker.request_stop()
    thread.join(timeout=15)


def status(job_id: str) -> JobStatus:
    return get_job(job_id).status


def wait_for_status(job_id: str, wanted: JobStatus, timeout: float = 10) -> None:
    wait_until(lambda: status(job_id) == wanted, timeout=timeout, message=f"job {job_id} to be {wanted}")


# -- time limits -----------------------------------------------------------------------------------
def test_a_sync_handler_past_its_time_limit_gets_job_timeout_and_is_retried(live_worker, ledger):
    job_id = tasks.loops_past_limit.enqueue()
    wait_for_status(job_id, JobStatus.FAILED)
    job = get_job(job_id)
    assert job.attempt == 2  # a timed-out attempt is an attempt: retries apply
    assert [error["type"] for error in job.errors] == [TIMEOUT_ERROR, TIMEOUT_ERROR]
    assert "time limit of 0.5s" in job.errors[0]["message"]
    assert [entry["attempt"] for entry in ledger.entries("cleanup")] == [1, 2]  # finally blocks ran
    assert not live_worker.hard_stopped


def test_enqueue_timeout_stops_an_async_handler(live_worker, ledger):
    job_id = tasks.async_loops.enqueue(timeout=0.3)
    wait_for_status(job_id, JobStatus.FAILED)
    job = get_job(job_id)
    assert job.timeout == 0.3
    assert job.errors[0]["type"] == TIMEOUT_ERROR
    assert len(ledger.entries("cleanup")) == 1


def test_a_queue_timeout_and_the_default_apply_when_the_task_sets_none(settings, store):
    settings.TEMPOTASK = {**settings.TEMPOTASK, "DEFAULT_TIMEOUT": 60, "QUEUES": {"slow": {"TIMEOUT": 7}}}
    assert get_job(tasks.loops.enqueue()).timeout == 60
    assert get_job(tasks.slow.enqueue({})).timeout == 7
    assert get_job(tasks.loops_past_limit.enqueue()).timeout == 0.5  # the task's own wins
    assert get_job(tasks.loops.enqueue(timeout=2)).timeout == 2  # the call's wins over all


def test_no_time_limit_by_default(store):
    assert get_job(tasks.loops.enqueue()).timeout is None


@pytest.mark.parametrize("bad", [0, -1, "10", True, float("nan")])
def test_a_bad_timeout_is_refused_at_enqueue(store, bad):
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        tasks.add.enqueue({"a": 1, "b": 1}, timeout=bad)


def test_a_lease_is_not_renewed_past_the_time_limit(live_worker, store):
    """A handler past its time limit keeps no lease alive: were the whole process stuck, another worker
    would take the job over STALLED_TIMEOUT after the deadline."""
    job_id = tasks.ignores_stops.enqueue({"seconds": 0.8}, timeout=0.2)
    wait_until(lambda: live_worker.running_count == 1, message="the job to start")
    wait_until(lambda: not live_worker.running.leases_by_queue(), timeout=2, message="the lease to stop renewing")
    # It swallowed JobTimeout and returned within the grace period: its result counts (as in Celery).
    wait_for_status(job_id, JobStatus.COMPLETED)


# -- the hard stop -----------------------------------------------------------------------------
def test_a_handler_ignoring_its_time_limit_is_abandoned_and_the_others_go_back(live_worker, store, ledger):
    hung = tasks.ignores_stops.enqueue({"seconds": 8}, timeout=0.3)
    wait_until(lambda: ledger.entries("start"), message="the hung job to start")
    bystander = tasks.loops.enqueue()  # started beside it, then given back
    wait_until(lambda: len(ledger.entries("start")) == 2, message="the bystander to start")
    wait_until(lambda: live_worker.hard_stopped, timeout=5, message="the hard stop")
    wait_until(lambda: live_worker.stopping and live_worker.running_count == 0, message="the worker to stop")
    job = get_job(hung)
    assert job.status == JobStatus.FAILED
    assert job.errors[-1]["type"] == TIMEOUT_ERROR and "(hard)" in job.errors[-1]["message"]
    other = get_job(bystander)
    assert other.status == JobStatus.WAITING  # back at once, not after STALLED_TIMEOUT
    assert other.attempt == 0 and other.errors == []  # its attempt is not counted
    assert store.inspect.queue_stats("default").processing == 0


def test_the_hard_stop_counts_as_an_attempt_and_retries_apply(live_worker, store, ledger):
    job_id = tasks.ignores_stops.enqueue({"seconds": 8}, timeout=0.3, attempts=3, retry_delay=30)
    wait_until(lambda: live_worker.hard_stopped, timeout=6, message="the hard stop")
    job = get_job(job_id)
    assert (job.status, job.attempt) == (JobStatus.DELAYED, 1)


# -- cancel ------------------------------------------------------------------------------------
def test_cancelling_a_waiting_job_means_it_never_starts(store, ledger):
    job_id = tasks.add.enqueue({"a": 1, "b": 2})
    received = []
    signals.job_cancelled.connect(lambda **kw: received.append(kw), weak=False, dispatch_uid="t-cancel")
    try:
        assert cancel_job(job_id) == JobStatus.WAITING
    finally:
        signals.job_cancelled.disconnect(dispatch_uid="t-cancel")
    worker = Worker(burst=True)
    worker.run()
    job = get_job(job_id)
    assert job.status == JobStatus.CANCELLED and job.cancel_requested
    assert ledger.entries("ran") == []
    assert store.inspect.queue_stats("default").cancelled == 1
    assert [kw["job"].id for kw in received] == [job_id] and received[0]["duration"] is None


def test_cancelling_a_delayed_job(store, ledger):
    job_id = tasks.add.enqueue({"a": 1, "b": 2}, delay=60)
    assert cancel_job(job_id) == JobStatus.DELAYED
    job = get_job(job_id)
    assert job.status == JobStatus.CANCELLED
    assert [error["type"] for error in job.errors] == [CANCEL_ERROR]
    stats = queue_stats()
    assert (stats.delayed, stats.cancelled) == (0, 1)
    assert retry_job(job_id) == JobStatus.CANCELLED  # by hand, it runs
    drain()
    assert get_job(job_id).status == JobStatus.COMPLETED and len(ledger.entries("ran")) == 1


def test_a_job_claimed_just_before_its_cancel_never_runs_its_handler(store, ledger):
    """The claim made the job processing, then the cancel came before the handler was called."""
    worker = Worker(concurrency=1)
    job_id = tasks.add.enqueue({"a": 1, "b": 2})
    claimed = store.claim("default", worker.name, 1)
    assert cancel_job(job_id) == JobStatus.PROCESSING
    worker.running.cancel(claimed.jobs[0]["entry"])  # the notice overtakes the claim's reply
    worker.claimer.claimed("default", claimed, 1)
    wait_until(lambda: worker.running_count == 1 or worker.jobs_done, message="the job to start")
    worker.finisher.start()
    wait_for_status(job_id, JobStatus.CANCELLED)
    assert ledger.entries("ran") == []
    worker.request_stop()
    worker.shutdown()


def test_cancelling_a_running_sync_job_raises_job_cancelled_inside_it(live_worker, ledger):
    job_id = tasks.loops.enqueue()
    wait_until(lambda: ledger.entries("start"), message="the job to start")
    assert cancel_job(job_id) == JobStatus.PROCESSING
    wait_for_status(job_id, JobStatus.CANCELLED, timeout=3)
    job = get_job(job_id)
    assert job.errors[-1]["type"] == CANCEL_ERROR
    assert job.attempt == 1  # never retried
    assert ledger.entries("cleanup")[0]["cancel_requested"] is True


def test_cancelling_a_running_async_job(live_worker, ledger):
    job_id = tasks.async_loops.enqueue()
    wait_until(lambda: ledger.entries("start"), message="the job to start")
    cancel_job(job_id)
    wait_for_status(job_id, JobStatus.CANCELLED, timeout=3)
    assert get_job(job_id).errors[-1]["type"] == CANCEL_ERROR
    assert ledger.entries("cleanup")[0]["cancel_requested"] is True


def test_a_handler_sees_cancel_requested_and_check_cancelled_raises(live_worker, ledger):
    job_id = tasks.checks_cancel.enqueue()
    wait_until(lambda: ledger.entries("start"), message="the job to start")
    cancel_job(job_id)
    wait_for_status(job_id, JobStatus.CANCELLED, timeout=3)
    assert ledger.entries("told")[0]["cancel_requested"] is True
    assert f"job {job_id} was cancelled" in get_job(job_id).errors[-1]["message"]


def test_a_missed_cancel_notice_is_caught_up_at_lease_renewal(store, fast_limits, ledger):
    worker = Worker(concurrency=1)
    worker.watchdog.on_notice = lambda data: None  # deaf: as if the notice was lost
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        job_id = tasks.loops.enqueue()
        wait_until(lambda: ledger.entries("start"), message="the job to start")
        cancel_job(job_id)
        wait_for_status(job_id, JobStatus.CANCELLED, timeout=5)  # heartbeat: every STALLED_TIMEOUT / 3
    finally:
        worker.request_stop()
        thread.join(timeout=15)


def test_a_cancelled_job_can_be_retried_by_hand(store):
    job_id = tasks.add.enqueue({"a": 1, "b": 2})
    cancel_job(job_id)
    assert retry_job(job_id) == JobStatus.CANCELLED
    job = get_job(job_id)
    assert job.status == JobStatus.WAITING and not job.cancel_requested


def test_cancelling_a_finished_or_missing_job_is_an_error(store):
    job_id = tasks.add.enqueue({"a": 1, "b": 2})
    cancel_job(job_id)
    with pytest.raises(InvalidJobState, match="only active jobs can be cancelled"):
        cancel_job(job_id)
    with pytest.raises(JobNotFound):
        cancel_job("no-such-job")


def test_cancelled_history_is_trimmed_like_failed(settings, store):
    settings.TEMPOTASK = {**settings.TEMPOTASK, "MAX_JOBS_PER_STATUS": 3}
    ids = [tasks.add.enqueue({"a": n, "b": 0}) for n in range(5)]
    for job_id in ids:
        cancel_job(job_id)
    kept = store.inspect.list_job_ids("default", "cancelled", 0, 10)
    assert len(kept) == 3 and set(kept) <= set(ids)
    assert sum(1 for job_id in ids if store.client.exists(store.keys("default").job(job_id))) == 3


def test_an_async_handler_blocking_its_loop_gets_the_hard_stop(live_worker, ledger):
    job_id = tasks.async_blocks_loop.enqueue({"seconds": 6}, timeout=0.3)
    wait_until(lambda: live_worker.hard_stopped, timeout=5, message="the hard stop")
    job = get_job(job_id)
    assert job.status == JobStatus.FAILED and "(hard)" in job.errors[-1]["message"]


def test_a_hung_cancelled_handler_ends_cancelled_by_the_hard_stop(live_worker, ledger):
    job_id = tasks.ignores_stops.enqueue({"seconds": 8})
    wait_until(lambda: ledger.entries("start"), message="the job to start")
    cancel_job(job_id)
    wait_until(lambda: live_worker.hard_stopped, timeout=5, message="the hard stop")
    job = get_job(job_id)
    assert job.status == JobStatus.CANCELLED
    assert job.errors[-1]["type"] == CANCEL_ERROR and "(hard)" in job.errors[-1]["message"]


def test_a_job_cancelled_while_its_worker_was_dead_is_not_run_by_the_taker(store, settings, ledger):
    settings.TEMPOTASK = {**settings.TEMPOTASK, "STALLED_TIMEOUT": 1}
    job_id = tasks.add.enqueue({"a": 1, "b": 2})
    assert store.claim("default", "dead-worker", 1).jobs  # a worker that died right after its claim
    assert cancel_job(job_id) == JobStatus.PROCESSING  # nobody hears the notice
    worker = Worker(concurrency=1)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        wait_for_status(job_id, JobStatus.CANCELLED, timeout=10)
    finally:
        worker.request_stop()
        thread.join(timeout=15)
    assert ledger.entries("ran") == []
    assert "before it started" in get_job(job_id).errors[-1]["message"]


def test_cancelled_history_can_be_purged(store):
    ids = [tasks.add.enqueue({"a": n, "b": 0}) for n in range(3)]
    for job_id in ids:
        cancel_job(job_id)
    assert store.purge("default", "cancelled") == 3
    assert store.inspect.queue_stats("default").cancelled == 0
    assert all(get_job(job_id) is None for job_id in ids)
