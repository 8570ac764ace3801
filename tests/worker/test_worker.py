"""The worker loop in-process, against a real Redis."""

from __future__ import annotations

import logging
import re
import threading
import time

import pytest

from tempotask_django import JobStatus, get_job, signals
from tempotask_django.conf import get_settings
from tempotask_django.storage.connection import get_default_store
from tempotask_django.worker import Worker
from tests.helpers import drain, url_with_password, wait_until
from tests.testapp import tasks

pytestmark = pytest.mark.redis


def test_runs_a_job_and_stores_its_result(both_modes, store, ledger):
    job_id = tasks.add.enqueue({"a": 2, "b": 3})
    drain()
    job = get_job(job_id)
    assert job.status == JobStatus.COMPLETED
    assert job.result == 5
    assert job.attempt == 1
    assert job.started_at <= job.finished_at
    assert [e["job"] for e in ledger.entries("ran")] == [job_id]


def test_failing_job_retries_then_lands_in_failed_with_every_traceback(both_modes, store, ledger):
    job_id = tasks.always_fails.enqueue({})
    drain()
    job = get_job(job_id)
    assert job.status == JobStatus.FAILED
    assert job.attempt == 2
    assert [e["attempt"] for e in job.errors] == [1, 2]
    assert all(e["type"] == "ValueError" and "this task always fails" in e["message"] for e in job.errors)
    assert all("Traceback (most recent call last)" in e["traceback"] for e in job.errors)
    assert len(ledger.entries("ran")) == 2


def test_flaky_job_succeeds_on_a_later_attempt(both_modes, store):
    job_id = tasks.flaky.enqueue({"succeed_on": 3})
    drain()
    job = get_job(job_id)
    assert (job.status, job.attempt, job.result, len(job.errors)) == (JobStatus.COMPLETED, 3, "finally", 2)


def retry_delays(store, job_id: str, attempts: int) -> list[float]:
    """Run ``attempts`` attempts of a failing job one by one; the retry delay chosen after each."""
    worker = Worker(concurrency=1)
    delays = []
    for attempt in range(1, attempts + 1):
        # Make the job due now, run one attempt, and read the delay chosen for the next one.
        store.client.zadd(store.keys("default").delayed, {job_id: 0}, xx=True)

        def started(n: int = attempt) -> bool:
            worker.run_once(block=False)
            return worker.jobs_started >= n

        wait_until(started, message=f"attempt {attempt} to start")
        wait_until(lambda n=attempt: worker.jobs_done >= n, message="attempt recorded")
        job = get_job(job_id)
        assert job.status == JobStatus.DELAYED
        delays.append((job.run_at - job.finished_at).total_seconds())
    worker.request_stop()
    worker.shutdown()
    return delays


def test_exponential_backoff_delays_each_retry_longer(store):
    delays = retry_delays(store, tasks.fails_with_backoff.enqueue({}), 3)
    for attempt, delay in enumerate(delays, start=1):
        base = 1 * 2 ** (attempt - 1)
        assert base * 0.89 <= delay <= base * 1.11, delays


def test_the_worker_caps_exponential_delays_at_max_retry_delay(store, settings):
    settings.TEMPOTASK = {**settings.TEMPOTASK, "MAX_RETRY_DELAY": 1.5}
    store = get_default_store()
    delays = retry_delays(store, tasks.fails_with_backoff.enqueue({}), 3)  # 1 s doubling: 1, 2, 4 s uncapped
    assert 0.89 <= delays[0] <= 1.11 and delays[1:] == [1.5, 1.5], delays


def test_logs_child_jobs_and_parent_id(both_modes, store, ledger):
    parent_id = tasks.parent.enqueue({"children": 3})
    drain()
    parent = get_job(parent_id)
    assert parent.status == JobStatus.COMPLETED
    assert [line["message"] for line in parent.logs] == ["spawned children", {"children": parent.result}]
    assert all(isinstance(line["t"], int) for line in parent.logs)
    children = [get_job(child_id) for child_id in parent.result]
    assert {child.parent_id for child in children} == {parent_id}
    assert {child.status for child in children} == {JobStatus.COMPLETED}


def test_app_context_is_injected(both_modes, store):
    job_id = tasks.uses_context.enqueue()
    drain()
    assert get_job(job_id).result == {"greeting": "hello", "item": "hello", "has_ledger": True}


def test_async_handlers_run_on_the_event_loop(both_modes, store, ledger):
    ids = [tasks.async_add.enqueue({"a": n, "b": 1}) for n in range(5)]
    drain(concurrency=5)
    assert [get_job(job_id).result for job_id in ids] == [1, 2, 3, 4, 5]


def test_system_exit_in_a_handler_fails_the_job_not_the_worker(store):
    bad = tasks.exits.enqueue()
    good = tasks.add.enqueue({"a": 1, "b": 1})
    drain()
    assert get_job(bad).status == JobStatus.FAILED
    assert get_job(bad).errors[0]["type"] == "SystemExit"
    assert get_job(good).result == 2


def test_unknown_task_name_becomes_a_failed_job_with_a_reason(store):
    job_id = tasks.add.enqueue({"a": 1, "b": 1})
    store.client.hset(store.keys("default").job(job_id), "name", "no_such_task")
    drain()
    job = get_job(job_id)
    assert job.status == JobStatus.FAILED
    assert "No task named 'no_such_task'" in job.errors[0]["message"]


def test_bad_json_data_becomes_a_failed_job_with_a_reason(store):
    job_id = tasks.add.enqueue({"a": 1, "b": 1})
    store.client.hset(store.keys("default").job(job_id), "data", "{not json")
    drain()
    job = get_job(job_id)
    assert job.status == JobStatus.FAILED
    assert "not valid JSON" in job.errors[0]["message"]
    assert job.attempt == 1  # a bad job is not retried


def test_higher_priority_starts_first_with_one_thread(store, ledger):
    low = [tasks.record.enqueue({"n": n}, priority=0) for n in range(3)]
    high = tasks.record.enqueue({"n": "high"}, priority=10)
    drain(concurrency=1)
    order = [entry["job"] for entry in ledger.entries("ran")]
    assert order == [high, *low]


def test_a_freed_slot_takes_the_best_waiting_job_not_one_claimed_earlier(store, ledger):
    """Slots are refilled as they free, never ahead: a later high-priority job overtakes queued ones."""
    low = [tasks.slow.enqueue({"seconds": 0.3}) for _ in range(3)]
    worker = Worker(["slow"], concurrency=1)
    thread = threading.Thread(target=worker.run)
    thread.start()
    wait_until(lambda: ledger.entries("start"), message="the first job to start")
    high = tasks.slow.enqueue({"seconds": 0}, priority=10)
    wait_until(lambda: len(ledger.entries("end")) == 4, message="every job to run")
    worker.request_stop()
    thread.join(timeout=10)
    assert [entry["job"] for entry in ledger.entries("start")] == [low[0], high, low[1], low[2]]


def test_signals_fire_for_each_transition(both_modes, store):
    seen = []

    def receiver(signal, **kwargs):
        seen.append(signal)

    names = {signals.job_started: "started", signals.job_completed: "completed", signals.job_failed: "failed"}
    for signal in names:
        signal.connect(receiver)
    try:
        tasks.add.enqueue({"a": 1, "b": 2})
        tasks.always_fails.enqueue({})
        drain()
    finally:
        for signal in names:
            signal.disconnect(receiver)
    counts = {name: sum(1 for s in seen if s is signal) for signal, name in names.items()}
    assert counts == {"started": 3, "completed": 1, "failed": 2}


def test_a_receiver_can_listen_to_one_task(both_modes, store):
    heard = []
    lifecycle = {
        signals.job_enqueued: "enqueued",
        signals.job_started: "started",
        signals.job_completed: "completed",
        signals.job_failed: "failed",
    }

    def receiver(sender, signal, **kwargs):
        name = kwargs["name"] if signal is signals.job_enqueued else kwargs["job"].name
        heard.append((lifecycle[signal], sender, name))

    for signal in lifecycle:
        signal.connect(receiver, sender=tasks.add)
    try:
        tasks.always_fails.enqueue({})
        tasks.add.enqueue({"a": 1, "b": 2})
        drain()
    finally:
        for signal in lifecycle:
            signal.disconnect(receiver, sender=tasks.add)
    assert heard == [("enqueued", tasks.add, "add"), ("started", tasks.add, "add"), ("completed", tasks.add, "add")]


def test_a_failing_signal_receiver_is_logged_and_ignored(both_modes, store, caplog):
    def broken(**kwargs):
        raise RuntimeError("receiver bug")

    signals.job_completed.connect(broken)
    try:
        job_id = tasks.add.enqueue({"a": 1, "b": 2})
        drain()
    finally:
        signals.job_completed.disconnect(broken)
    assert get_job(job_id).status == JobStatus.COMPLETED
    assert "receiver bug" in caplog.text


def test_max_jobs_stops_the_worker(store):
    for n in range(5):
        tasks.add.enqueue({"a": n, "b": 0})
    worker = Worker(max_jobs=2)
    worker.run()
    assert worker.jobs_done == 2
    assert get_default_store().inspect.queue_stats("default").waiting == 3


def test_history_is_trimmed_to_max_jobs_per_status(store, settings):
    settings.TEMPOTASK = {**settings.TEMPOTASK, "MAX_JOBS_PER_STATUS": 5}
    ids = tasks.noop.enqueue_many([None] * 12)
    drain(concurrency=4)
    store = get_default_store()
    assert store.inspect.queue_stats("default").completed == 5
    kept = set(store.inspect.list_job_ids("default", "completed", 0, 100))
    assert kept <= set(ids)
    assert sum(1 for job_id in ids if store.client.exists(store.keys("default").job(job_id))) == 5
    assert not any(store.client.exists(store.keys("default").logs(job_id)) for job_id in set(ids) - kept)


def test_stop_request_lets_running_jobs_finish(store, ledger):
    job_id = tasks.slow.enqueue({"seconds": 0.5})
    worker = Worker(["slow"])
    thread = threading.Thread(target=worker.run)
    thread.start()
    wait_until(lambda: ledger.entries("start"), message="job start")
    worker.request_stop()
    thread.join(timeout=10)
    assert get_job(job_id).status == JobStatus.COMPLETED
    assert get_settings().shutdown_timeout == 10


def test_a_stopping_worker_renews_its_leases_and_starts_nothing_new(store, ledger, settings):
    """While a stopped worker waits for its running job, the lease stays fresh (nobody can take the
    job over past STALLED_TIMEOUT) and the job waiting behind it is left for other workers."""
    settings.TEMPOTASK = {**settings.TEMPOTASK, "STALLED_TIMEOUT": 1}
    store = get_default_store()
    running = tasks.slow.enqueue({"seconds": 2.5})
    behind = tasks.slow.enqueue({"seconds": 0.1})
    worker = Worker(["slow"], concurrency=1)
    thread = threading.Thread(target=worker.run)
    thread.start()
    wait_until(lambda: ledger.entries("start"), message="the first job to start")
    worker.request_stop()
    time.sleep(1.5)  # past STALLED_TIMEOUT, still running
    assert store.reclaim("slow", "another-worker", 5).jobs == []  # nothing looks stalled
    thread.join(timeout=10)
    assert not thread.is_alive()
    job = get_job(running)
    assert (job.status, job.attempt, job.worker, job.errors) == (JobStatus.COMPLETED, 1, worker.name, [])
    assert get_job(behind).status == JobStatus.WAITING
    assert [entry["job"] for entry in ledger.entries("start")] == [running]


def _run_in_thread(worker: Worker) -> threading.Thread:
    thread = threading.Thread(target=worker.run)
    thread.start()
    return thread


def test_a_job_whose_entry_was_deleted_under_a_dead_worker_runs_again(store, ledger, settings):
    """XDEL (or XTRIM) of a running job's entry, then its worker dies: the take-over acks the
    tombstone and the sweep queues the job again, where nothing re-queued it before."""
    settings.TEMPOTASK = {**settings.TEMPOTASK, "STALLED_TIMEOUT": 1}
    store = get_default_store()
    job_id = tasks.add.enqueue({"a": 1, "b": 2})
    (claimed,) = store.claim("default", "dead-worker", 1).jobs
    store.client.xdel(store.keys("default").stream, claimed["entry"])
    worker = Worker(burst=True)  # exits once nothing is waiting or processing
    thread = _run_in_thread(worker)
    thread.join(timeout=15)
    if thread.is_alive():
        worker.request_stop()
        thread.join(timeout=10)
        pytest.fail(f"the job never finished: {get_job(job_id)}")
    job = get_job(job_id)
    assert (job.status, job.result, job.attempt) == (JobStatus.COMPLETED, 3, 2)
    assert [error["type"] for error in job.errors] == ["EntryLost"]
    assert [entry["attempt"] for entry in ledger.entries("ran")] == [2]


def test_a_job_whose_entry_was_deleted_under_a_live_worker_runs_again(store, ledger, settings, caplog):
    """The live worker's renewal finds the entry gone: it treats the lease as lost (its result is
    discarded, not refused forever), and the sweep queues the job again."""
    settings.TEMPOTASK = {**settings.TEMPOTASK, "STALLED_TIMEOUT": 1}
    store = get_default_store()
    job_id = tasks.slow.enqueue({"seconds": 1})
    worker = Worker(["slow"], concurrency=1)
    with caplog.at_level(logging.WARNING, logger="tempotask"):
        thread = _run_in_thread(worker)
        try:
            wait_until(lambda: ledger.entries("start"), message="the job to start")
            store.client.xdel(store.keys("slow").stream, get_job(job_id).entry_id)
            wait_until(lambda: get_job(job_id).status == JobStatus.COMPLETED, timeout=10, message="the job to end")
        finally:
            worker.request_stop()
            thread.join(timeout=10)
    job = get_job(job_id)
    assert (job.attempt, job.worker, [error["type"] for error in job.errors]) == (2, worker.name, ["EntryLost"])
    assert len(ledger.entries("start")) == len(ledger.entries("end")) == 2
    assert "lost the lease of entry" in caplog.text and "result discarded" in caplog.text


def test_a_worker_leaving_with_a_job_still_running_keeps_its_lease(store, ledger, settings):
    """Deleting a consumer drops its pending entries silently: a worker that exits past
    SHUTDOWN_TIMEOUT must leave its consumer (and so the job's lease) for another to take over."""
    settings.TEMPOTASK = {**settings.TEMPOTASK, "SHUTDOWN_TIMEOUT": 0}
    store = get_default_store()
    job_id = tasks.slow.enqueue({"seconds": 0.5})
    worker = Worker(["slow"])
    worker.run_once(block=False)
    wait_until(lambda: ledger.entries("start"), message="the job to start")
    worker.request_stop()
    assert worker.shutdown() is False
    consumers = store.client.xinfo_consumers(store.keys("slow").stream, "workers")
    assert [(c["name"], c["pending"]) for c in consumers] == [(worker.name, 1)]
    assert get_job(job_id).status == JobStatus.PROCESSING
    wait_until(lambda: ledger.entries("end"), message="the abandoned handler to return")  # before the next test


@pytest.mark.parametrize("form", ["userinfo", "userinfo with @", "query"])
def test_the_worker_start_line_masks_the_redis_password(redis_client, settings, caplog, form):
    url = url_with_password(settings.TEMPOTASK["REDIS_URL"], form, "s3cret")
    settings.TEMPOTASK = {**settings.TEMPOTASK, "REDIS_URL": url}
    job_id = tasks.add.enqueue({"a": 1, "b": 1})  # through the URL with the password: it is used
    with caplog.at_level(logging.INFO, logger="tempotask"):
        drain()
    assert get_job(job_id).status == JobStatus.COMPLETED
    started = [record.getMessage() for record in caplog.records if " started: queues " in record.getMessage()]
    assert len(started) == 1 and ("password=***" if form == "query" else "default:***@") in started[0]
    assert "s3cret" not in caplog.text


def test_each_job_logs_its_start_at_debug_and_its_end_at_info(store, caplog):
    done = tasks.add.enqueue({"a": 1, "b": 2})
    broken = tasks.always_fails.enqueue({"why": "test"})  # 2 attempts, no retry delay
    worker = Worker(concurrency=2)
    try:
        with caplog.at_level(logging.DEBUG, logger="tempotask"):

            def settled() -> bool:
                worker.run_once(block=False)
                statuses = (get_job(done).status, get_job(broken).status)
                return statuses == (JobStatus.COMPLETED, JobStatus.FAILED) and worker.running_count == 0

            wait_until(settled, message="both jobs to end, recorded")
    finally:
        worker.request_stop()
        worker.shutdown()
    lines = [(record.levelno, record.getMessage()) for record in caplog.records if record.name == "tempotask"]

    def one(level: int, pattern: str) -> None:
        found = [text for levelno, text in lines if levelno == level and re.fullmatch(pattern, text)]
        assert len(found) == 1, (pattern, lines)

    one(logging.DEBUG, rf"job {done} add started \(attempt 1/1\)")
    one(logging.INFO, rf"job {done} add completed in \d+\.\d{{3}}s \(attempt 1\)")
    one(logging.DEBUG, rf"job {broken} always_fails started \(attempt 1/2\)")
    one(logging.DEBUG, rf"job {broken} always_fails started \(attempt 2/2\)")
    one(
        logging.WARNING,
        rf"job {broken} always_fails failed in \d+\.\d{{3}}s \(attempt 1/2\): ValueError: this task always fails; "
        r"retry in 0\.0s",
    )
    one(
        logging.ERROR,
        rf"job {broken} always_fails failed in \d+\.\d{{3}}s \(attempt 2/2\): ValueError: this task always fails",
    )
