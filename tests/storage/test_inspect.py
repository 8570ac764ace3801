"""The read side the admin relies on (stats.lua, children sets, name filter, minute totals), on real Redis."""

from __future__ import annotations

import json
import time

import pytest

from tempotask_django.storage.records import Finish, JobSpec
from tests.helpers import finish, job_total

pytestmark = pytest.mark.redis

Q = "default"


def spec(job_id: str, name: str = "add", **kwargs) -> JobSpec:
    return JobSpec(id=job_id, name=name, queue=kwargs.pop("queue", Q), data=json.dumps({"a": 1}), **kwargs)


def fail_next(store, queue: str = Q, consumer: str = "w1") -> str:
    job = store.claim(queue, consumer, 1).jobs[0]
    error = json.dumps({"attempt": 1, "type": "ValueError", "message": "no", "traceback": "", "t": 0})
    assert finish(store, consumer, [Finish(queue, job["entry"], job["id"], False, error)])[0].accepted
    return job["id"]


def set_enqueued_at(store, job_id: str, ms: int, queue: str = Q) -> None:
    store.client.hset(store.keys(queue).job(job_id), "enqueued_at", ms)


def test_stats_count_every_status_and_the_consumers(store):
    for n in range(4):
        store.enqueue(spec(f"j{n}"))
    store.enqueue(spec("later", delay_ms=60_000))
    fail_next(store)
    store.claim(Q, "w2", 1)
    store.pause_queue(Q)
    stats = store.inspect.queue_stats(Q)
    assert (stats.waiting, stats.delayed, stats.processing, stats.completed, stats.failed) == (2, 1, 1, 0, 1)
    assert stats.paused and stats.consumers == 2


def test_stats_of_an_unknown_queue_are_zero(store):
    stats = store.inspect.queue_stats("never-used")
    assert job_total(stats) == 0 and stats.consumers == 0 and not stats.paused
    assert stats.next_job_age is None and stats.oldest_job_age is None


def test_oldest_waiting_job_is_found_across_priority_bands(store):
    now = store.server_time_ms()
    store.enqueue(spec("old-low", priority=-5))
    store.enqueue(spec("mid", priority=0))
    store.enqueue(spec("new-high", priority=7))
    set_enqueued_at(store, "old-low", now - 600_000)
    set_enqueued_at(store, "mid", now - 60_000)
    set_enqueued_at(store, "new-high", now - 1_000)
    stats = store.inspect.queue_stats(Q)
    # The job that runs next is the high-priority one; the one waiting longest is the low one.
    assert 0.5 <= stats.next_job_age < 30
    assert 599 <= stats.oldest_job_age < 630


def test_many_queues_in_one_call(store):
    store.enqueue(spec("a1", queue="a"))
    store.enqueue(spec("b1", queue="b"))
    store.enqueue(spec("b2", queue="b"))
    stats = store.inspect.queue_stats_many(["a", "b", "c"])
    assert [(s.queue, s.waiting) for s in stats] == [("a", 1), ("b", 2), ("c", 0)]
    assert store.inspect.queue_stats_many([]) == []


def test_children_are_listed_across_queues_and_leave_when_deleted(store):
    store.enqueue(spec("parent"))
    store.enqueue(spec("c1", parent_id="parent"))
    store.enqueue(spec("c2", parent_id="parent", queue="other"))
    store.enqueue(spec("unrelated"))
    jobs, total = store.inspect.children("parent", [Q, "other"])
    assert total == 2 and sorted(job.id for job in jobs) == ["c1", "c2"]
    store.delete_job("other", "c2")
    jobs, total = store.inspect.children("parent", [Q, "other"])
    assert total == 1 and [job.id for job in jobs] == ["c1"]
    assert not store.client.exists(store.keys("other").children("parent"))


def test_children_leave_when_trimmed_purged_or_replaced(store):
    store.enqueue(spec("kid", parent_id="p1"))
    fail_next(store)
    # Re-enqueueing a finished id under another parent moves it.
    store.enqueue(spec("kid", parent_id="p2"))
    assert store.inspect.children("p1", [Q]) == ([], 0)
    assert [job.id for job in store.inspect.children("p2", [Q])[0]] == ["kid"]
    fail_next(store)
    assert store.purge(Q, "failed") == 1
    assert store.inspect.children("p2", [Q]) == ([], 0)
    assert not store.client.exists(store.keys(Q).children("p2"))


def test_children_list_is_bounded(store):
    store.enqueue_many([spec(f"c{n:03}", parent_id="big") for n in range(150)])
    jobs, total = store.inspect.children("big", [Q], limit=20)
    assert total == 150 and len(jobs) == 20


def test_find_jobs_by_name_pages_within_a_window(store):
    store.enqueue_many([spec(f"j{n:03}", name="add" if n % 3 else "other") for n in range(90)])
    jobs, found, complete = store.inspect.find_jobs_by_name(Q, "waiting", "other", offset=0, limit=10)
    assert found == 30 and complete and len(jobs) == 10
    assert all(job.name == "other" for job in jobs)
    assert [job.id for job in jobs][:2] == ["j087", "j084"]  # newest first
    page2, _, _ = store.inspect.find_jobs_by_name(Q, "waiting", "other", offset=10, limit=10)
    assert not {job.id for job in jobs} & {job.id for job in page2}
    _, found, complete = store.inspect.find_jobs_by_name(Q, "waiting", "other", window=30)
    assert found == 10 and not complete


def test_minute_totals_sum_queues(store):
    store.enqueue(spec("x", queue="a"))
    store.enqueue(spec("y", queue="b"))
    fail_next(store, "a")
    job = store.claim("b", "w1", 1).jobs[0]
    finish(store, "w1", [Finish("b", job["entry"], "y", True, "1")])
    series = store.inspect.minute_totals(["a", "b"], minutes=3)
    assert len(series) == 3 and series[0]["minute"] < series[-1]["minute"]
    assert sum(p["completed"] for p in series) == 1 and sum(p["failed"] for p in series) == 1


def test_retry_failed_queues_every_failed_job_once(store):
    for n in range(5):
        store.enqueue(spec(f"f{n}"))
    for _ in range(5):
        fail_next(store)
    store.client.zadd(store.keys(Q).failed, {"ghost": 1})  # an id without a record does not loop forever
    assert store.retry_failed(Q, batch=2) == 5
    stats = store.inspect.queue_stats(Q)
    assert stats.waiting == 5 and stats.failed == 1


def test_waiting_since_counts_from_the_last_failure(store):
    store.enqueue(JobSpec(id="r", name="add", queue=Q, data="{}", max_attempts=2))
    set_enqueued_at(store, "r", store.server_time_ms() - 3_600_000)
    job = store.claim(Q, "w1", 1).jobs[0]
    time.sleep(0.01)
    finish(store, "w1", [Finish(Q, job["entry"], "r", False, "{}", retry_delay_ms=0)])
    assert store.inspect.queue_stats(Q).oldest_job_age < 5
