"""Damaged records and foreign entries never stop a worker: each ends as a failed (or completed) job."""

from __future__ import annotations

import json
import threading

import pytest
import redis
from django.conf import settings

from tempotask_django import JobStatus, get_job, queue_stats
from tempotask_django.storage.keys import CONSUMER_GROUP
from tempotask_django.worker import Worker
from tempotask_django.worker.runner import JobRunner
from tests.helpers import drain, wait_until
from tests.testapp import tasks

pytestmark = pytest.mark.redis

Q = "default"

# Fields another program might have damaged in a job record, and the worker must live with.
DAMAGED = [
    {"data": "{not json"},
    {"data": "[" * 5000},
    {"name": "no.such.task"},
    {"name": ""},
    {"attempt": "x"},
    {"attempt": "1e400"},
    {"max_attempts": "-1"},
    {"retry_delay": "nan", "backoff": "exponential"},
    {"backoff": "sideways"},
    {"enqueued_at": "not-a-time"},
    {"started_at": "99999999999999999999"},
    {"run_at": "-1e30"},
    {"status": "weird"},
    {"id": "someone-else"},
]


def _settled(store, job_id: str) -> str:
    """The job's final status; nothing of it may be left running or leased."""
    assert store.client.xpending(store.keys(Q).stream, CONSUMER_GROUP)["pending"] == 0
    assert store.client.zscore(store.keys(Q).processing, job_id) is None
    return store.client.hget(store.keys(Q).job(job_id), "status")


@pytest.mark.parametrize("damage", DAMAGED, ids=lambda d: ",".join(f"{k}={v[:12]}" for k, v in d.items()))
def test_a_damaged_waiting_record_is_settled_and_the_worker_goes_on(store, damage):
    job_id = tasks.add.enqueue({"a": 1, "b": 2})
    store.client.hset(store.keys(Q).job(job_id), mapping=damage)
    good = tasks.add.enqueue({"a": 2, "b": 2})
    worker = drain()
    assert _settled(store, job_id) in ("completed", "failed")
    assert get_job(good).result == 4
    assert worker.slots.free() == worker.concurrency  # every slot came back


@pytest.mark.parametrize("priority", ["x", "nan", "-inf", "1e400"])
def test_a_damaged_priority_does_not_block_the_queue(store, priority):
    """Promoting a due job with a damaged priority used to fail the claim script for the whole queue."""
    delayed = tasks.add.enqueue({"a": 1, "b": 1}, delay=60)
    store.client.hset(store.keys(Q).job(delayed), "priority", priority)
    store.client.zadd(store.keys(Q).delayed, {delayed: 0})  # due now
    good = tasks.add.enqueue({"a": 2, "b": 2})
    drain()
    assert get_job(delayed).result == 2
    assert get_job(good).result == 4


def test_a_damaged_priority_does_not_break_a_retry(store):
    job_id = tasks.always_fails.enqueue({})
    store.client.hset(store.keys(Q).job(job_id), "priority", "x")
    drain()
    job = get_job(job_id)
    assert (job.status, job.attempt) == (JobStatus.FAILED, 2)


def test_an_overflowing_retry_delay_fails_the_job_instead_of_the_finisher(store):
    """int(1e308 * 1000) raised in the finisher thread, which died: no job was recorded after it."""
    job_id = tasks.always_fails.enqueue({})
    store.client.hset(store.keys(Q).job(job_id), "retry_delay", "1e308")
    worker = Worker()
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        wait_until(lambda: get_job(job_id).status == JobStatus.FAILED, message="the damaged job to fail")
        job = get_job(job_id)
        assert job.attempt == 1
        assert job.errors[-1]["type"] == "ValueError"  # the handler's own error, with why it was not retried
        why = "not retried: retry_delay 1e+308 in its record is out of range"
        assert job.errors[-1]["message"] == f"this task always fails ({why})"
        assert worker.finisher.is_alive()
        later = tasks.add.enqueue({"a": 1, "b": 1})  # recorded by the same finisher
        wait_until(lambda: get_job(later).status == JobStatus.COMPLETED, message="a later job to be recorded")
        assert get_job(later).result == 2
    finally:
        worker.request_stop()
        thread.join(timeout=15)


@pytest.mark.one_server
def test_invalid_utf8_in_a_record_is_read_not_raised(store):
    job_id = tasks.add.enqueue({"a": 1, "b": 2})
    raw = redis.Redis.from_url(settings.TEMPOTASK["REDIS_URL"])  # sends bytes as they are
    raw.hset(store.keys(Q).job(job_id), "data", b'{"a": "\xff\xfe", "b": 1}')
    raw.close()
    drain()
    job = get_job(job_id)
    assert job.status == JobStatus.FAILED  # "\ufffd\ufffd" + 1 is a TypeError in the handler
    assert job.data == {"a": "\ufffd\ufffd", "b": 1}


def test_an_entry_naming_a_missing_job_becomes_a_failed_record(store):
    entry = store.client.xadd(store.keys(Q).stream, {"job": "no-such-job"})
    good = tasks.add.enqueue({"a": 1, "b": 1})
    drain()
    record = get_job(f"invalid-entry-{entry}", Q)
    assert record.status == JobStatus.FAILED
    assert "names a job that does not exist" in record.errors[0]["message"]
    assert get_job(good).result == 2


def test_an_id_without_a_record_in_the_waiting_set_is_dropped(store):
    store.client.zadd(store.keys(Q).waiting, {"ghost": 0})
    good = tasks.add.enqueue({"a": 1, "b": 1})
    drain()
    assert get_job(good).result == 2
    assert store.client.zcard(store.keys(Q).waiting) == 0


def test_queue_stats_survive_a_damaged_enqueue_time(store):
    job_id = tasks.add.enqueue({"a": 1, "b": 1})
    store.client.hset(store.keys(Q).job(job_id), "enqueued_at", "not-a-time")
    stats = queue_stats()
    assert stats.waiting == 1 and stats.next_job_age is None


@pytest.mark.parametrize("method", ["run_sync", "run_async"])
def test_a_runner_that_raises_still_frees_the_slot(store, monkeypatch, method):
    """Before, an exception escaping the runner was kept by the executor: the job stayed leased
    (and renewed) for ever and its slot never came back."""

    def broken(self, fields, control=None):
        raise RuntimeError("runner bug")

    async def broken_async(self, fields, control=None):
        raise RuntimeError("runner bug")

    monkeypatch.setattr(JobRunner, method, broken if method == "run_sync" else broken_async)
    job_id = (tasks.add if method == "run_sync" else tasks.async_add).enqueue({"a": 1, "b": 1})
    worker = drain()
    job = get_job(job_id)
    assert job.status == JobStatus.FAILED and "runner bug" in job.errors[0]["message"]
    assert worker.slots.free() == worker.concurrency  # every slot came back


def test_a_cyclic_result_is_stored_as_its_repr(store):
    """normalize() recursed until RecursionError, which escaped the finisher thread and ended it."""
    job_id = tasks.returns_cycle.enqueue()
    drain()
    assert get_job(job_id).result["repr"] == "[[...]]"


def test_every_error_record_is_json(store):
    for damage in DAMAGED:
        job_id = tasks.add.enqueue({"a": 1, "b": 2})
        store.client.hset(store.keys(Q).job(job_id), mapping=damage)
    drain()
    for raw in store.client.scan_iter(f"{store.keys(Q).errors_prefix}*"):
        for line in store.client.lrange(raw, 0, -1):
            assert isinstance(json.loads(line), dict)
