"""Child-job sets hold only jobs that still exist, and go with their parent: nothing leaks."""

from __future__ import annotations

import json
import time

import pytest

from tempotask_django.storage.connection import get_default_store
from tempotask_django.storage.records import Finish, JobSpec
from tests.helpers import finish

pytestmark = pytest.mark.redis

Q = "default"


def spec(job_id: str, parent_id: str = "") -> JobSpec:
    return JobSpec(id=job_id, name="add", queue=Q, data=json.dumps({"a": 1}), parent_id=parent_id)


def complete_all(store) -> None:
    time.sleep(0.002)  # a later finish time than the previous batch: the history is ordered by it
    jobs = store.claim(Q, "w1", 1000).jobs
    finish(store, "w1", [Finish(Q, job["entry"], job["id"], True, "1") for job in jobs])


@pytest.fixture
def small_history(store, settings):
    """A store keeping 3 completed and 3 failed jobs per queue."""
    settings.TEMPOTASK = {**settings.TEMPOTASK, "MAX_JOBS_PER_STATUS": 3}
    return get_default_store()


def test_trimmed_children_leave_their_parents_set(small_history):
    store = small_history
    store.enqueue_many([spec("parent"), *(spec(f"child-{n}", "parent") for n in range(3))])
    complete_all(store)
    store.enqueue_many([spec(f"later-{n}") for n in range(3)])
    complete_all(store)  # the history keeps the 3 newest: the children are trimmed
    assert store.inspect.list_job_ids(Q, "completed", 0, 10) == ["later-2", "later-1", "later-0"]
    assert store.client.smembers(store.keys(Q).children("parent")) == set()
    assert store.inspect.children("parent", [Q]) == ([], 0)


def test_a_trimmed_parent_takes_its_children_set_with_it(small_history):
    store = small_history
    store.enqueue(spec("parent"))
    complete_all(store)
    store.enqueue(spec("child", "parent"))  # still waiting when its parent goes
    store.enqueue_many([spec(f"later-{n}") for n in range(3)])
    jobs = [job for job in store.claim(Q, "w1", 10).jobs if job["id"] != "child"]
    time.sleep(0.002)
    finish(store, "w1", [Finish(Q, job["entry"], job["id"], True, "1") for job in jobs])
    assert not store.client.exists(store.keys(Q).job("parent"))
    assert not store.client.exists(store.keys(Q).children("parent"))


def test_deleted_and_purged_jobs_leave_no_children_set(store):
    store.enqueue_many([spec("parent"), spec("child", "parent"), spec("other"), spec("other-child", "other")])
    assert store.delete_job(Q, "parent") == "waiting"
    assert not store.client.exists(store.keys(Q).children("parent"))
    complete_all(store)
    assert store.purge(Q, "completed") == 3
    assert store.client.keys(f"{store.keys(Q).base}:children:*") == []
