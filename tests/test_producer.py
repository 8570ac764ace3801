"""Enqueueing: validation at the call site, dedup, delays, transactions."""

from __future__ import annotations

import datetime

import pytest
from django.db import transaction
from django.utils import timezone

from tempotask_django import JobStatus, add_job, add_jobs, get_job, signals
from tempotask_django.exceptions import TaskNotRegistered
from tests.helpers import job_total
from tests.testapp import tasks

pytestmark = pytest.mark.redis


def test_enqueue_returns_an_id_and_waits(store):
    job_id = tasks.add.enqueue({"a": 1, "b": 2})
    job = get_job(job_id)
    assert (job.status, job.name, job.queue, job.data, job.max_attempts) == (
        JobStatus.WAITING,
        "add",
        "default",
        {"a": 1, "b": 2},
        1,
    )


def test_add_job_by_name_with_options(store):
    job_id = add_job("add", {"a": 1, "b": 2}, job_id="notification-123", attempts=3, priority=7, queue="other")
    assert job_id == "notification-123"
    job = get_job(job_id)
    assert (job.queue, job.max_attempts, job.priority) == ("other", 3, 7)


def test_job_id_deduplicates_while_active(store):
    first = tasks.add.enqueue({"a": 1, "b": 2}, job_id="same")
    second = tasks.add.enqueue({"a": 9, "b": 9}, job_id="same")
    assert first == second == "same"
    assert get_job("same").data == {"a": 1, "b": 2}
    assert store.inspect.queue_stats("default").waiting == 1


def test_delay_and_run_at(store):
    delayed = tasks.add.enqueue({"a": 1, "b": 2}, delay=datetime.timedelta(minutes=5))
    scheduled = tasks.add.enqueue({"a": 1, "b": 2}, run_at=timezone.now() + datetime.timedelta(hours=1))
    assert get_job(delayed).status == get_job(scheduled).status == JobStatus.DELAYED
    assert get_job(scheduled).run_at > get_job(delayed).run_at


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"delay": -1}, ValueError, "delay"),
        ({"run_at": datetime.datetime(2030, 1, 1)}, ValueError, "aware"),
        ({"delay": 1, "run_at": timezone.now()}, ValueError, "either"),
        ({"priority": 1.5}, ValueError, "priority"),
        ({"job_id": "has space"}, ValueError, "job_id"),
        ({"job_id": 7}, TypeError, "job_id"),
        ({"attempts": 0}, ValueError, "attempts"),
        ({"queue": "a{b}"}, ValueError, "queue"),
        ({"backoff": "sometimes"}, ValueError, "backoff"),
    ],
)
def test_bad_options_raise_at_enqueue_and_add_nothing(store, options, error, message):
    with pytest.raises(error, match=message):
        tasks.add.enqueue({"a": 1, "b": 2}, **options)
    assert store.client.dbsize() == 0


def test_bad_data_raises_at_enqueue(both_modes, store, settings):
    with pytest.raises(TypeError, match="not JSON-serializable"):
        tasks.add.enqueue({"a": object()})
    settings.TEMPOTASK = {**settings.TEMPOTASK, "MAX_PAYLOAD_BYTES": 100}
    with pytest.raises(ValueError, match="MAX_PAYLOAD_BYTES"):
        tasks.add.enqueue({"a": "x" * 200})
    assert get_job_count(store) == 0


def get_job_count(store) -> int:
    return job_total(store.inspect.queue_stats("default"))


def test_unknown_task_name_raises_at_enqueue(both_modes, store):
    with pytest.raises(TaskNotRegistered):
        add_job("no_such_task", {})


def test_add_jobs_validates_all_before_adding_any(store):
    with pytest.raises(TypeError):
        add_jobs([{"name": "add", "data": {"a": 1, "b": 1}}, {"name": "add", "data": {"a": {1}}}])
    assert get_job_count(store) == 0
    ids = add_jobs([{"name": "add", "data": {"a": n, "b": 0}, "job_id": f"bulk-{n}"} for n in range(3)])
    assert ids == ["bulk-0", "bulk-1", "bulk-2"]
    assert store.inspect.queue_stats("default").waiting == 3


@pytest.mark.django_db(transaction=True)
def test_inside_a_transaction_the_job_is_added_on_commit(both_modes, store):
    with transaction.atomic():
        job_id = tasks.add.enqueue({"a": 1, "b": 2})
        assert get_job(job_id) is None
    ran = both_modes == "immediate"  # immediate mode: the job ran on commit
    assert get_job(job_id).status == (JobStatus.COMPLETED if ran else JobStatus.WAITING)


@pytest.mark.django_db(transaction=True)
def test_rolled_back_transaction_adds_nothing(both_modes, store):
    with pytest.raises(RuntimeError), transaction.atomic():
        job_id = tasks.add.enqueue({"a": 1, "b": 2})
        raise RuntimeError("rollback")
    assert get_job(job_id) is None


@pytest.mark.django_db(transaction=True)
def test_on_commit_false_enqueues_at_once(both_modes, store):
    with transaction.atomic():
        job_id = tasks.add.enqueue({"a": 1, "b": 2}, on_commit=False)
        assert get_job(job_id) is not None


@pytest.mark.django_db(transaction=True)
def test_enqueue_on_commit_setting_off(both_modes, store, settings):
    settings.TEMPOTASK = {**settings.TEMPOTASK, "ENQUEUE_ON_COMMIT": False}
    with transaction.atomic():
        job_id = tasks.add.enqueue({"a": 1, "b": 2})
        assert get_job(job_id) is not None


def test_job_enqueued_is_sent_for_each_job_added_and_not_for_a_duplicate(store):
    seen = []

    def receiver(signal, sender, **kwargs):
        seen.append(kwargs)

    signals.job_enqueued.connect(receiver)
    try:
        waiting = tasks.add.enqueue({"a": 1, "b": 2}, job_id="signalled")
        tasks.add.enqueue({"a": 1, "b": 2}, job_id="signalled")  # deduplicated: nothing added, nothing sent
        delayed = tasks.add.enqueue({"a": 1, "b": 2}, delay=60, queue="other")
        many = add_jobs([{"name": "record", "data": n} for n in range(2)] + [{"name": "add", "job_id": "signalled"}])
    finally:
        signals.job_enqueued.disconnect(receiver)
    assert seen == [
        {"job_id": waiting, "name": "add", "queue": "default", "status": "waiting"},
        {"job_id": delayed, "name": "add", "queue": "other", "status": "delayed"},
        *({"job_id": job_id, "name": "record", "queue": "default", "status": "waiting"} for job_id in many[:2]),
    ]
