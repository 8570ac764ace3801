"""The module-level API (tempotask_django.api): get_job, retry_job and delete_job, with and without queue=."""

from __future__ import annotations

import pytest

from tempotask_django import JobStatus, api, delete_job, get_job, retry_job
from tempotask_django.exceptions import AmbiguousJob, InvalidJobState, JobNotFound
from tests.helpers import drain
from tests.testapp import tasks

pytestmark = pytest.mark.redis


def failed_job(job_id: str, queue: str) -> str:
    tasks.always_fails.enqueue({"why": "test"}, job_id=job_id, queue=queue)
    drain([queue])
    assert get_job(job_id, queue=queue).status == JobStatus.FAILED
    return job_id


def test_get_job_finds_a_job_in_any_queue_or_returns_none(store):
    job_id = tasks.add.enqueue({"a": 1, "b": 2}, queue="beta")
    assert get_job(job_id).queue == "beta"
    assert get_job(job_id, queue="beta").data == {"a": 1, "b": 2}
    assert get_job(job_id, queue="alpha") is None  # queue= limits the lookup to that queue
    assert get_job("no-such-job") is None
    assert get_job("no-such-job", queue="beta") is None


def test_one_id_in_two_queues_is_two_jobs_and_queue_picks_one(store):
    """A job id is unique within its queue only: the hash lives under the queue's hash tag."""
    assert tasks.add.enqueue({"a": 1, "b": 1}, job_id="dup", queue="beta") == "dup"
    assert tasks.add.enqueue({"a": 2, "b": 2}, job_id="dup", queue="alpha") == "dup"
    assert tasks.add.enqueue({"a": 3, "b": 3}, job_id="dup", queue="alpha") == "dup"  # deduplicated in alpha
    assert store.inspect.count_jobs("alpha", "waiting") == store.inspect.count_jobs("beta", "waiting") == 1
    assert get_job("dup", queue="alpha").data == {"a": 2, "b": 2}
    assert get_job("dup", queue="beta").data == {"a": 1, "b": 1}
    assert get_job("dup").queue == "alpha"  # no queue=: the other queues alphabetically...
    tasks.add.enqueue({"a": 4, "b": 4}, job_id="dup", queue="zulu")
    tasks.add.enqueue({"a": 5, "b": 5}, job_id="dup")
    assert get_job("dup").queue == "default"  # ...after DEFAULT_QUEUE, which comes first
    assert api.lookup_order()[0] == "default"
    assert [q for q in api.lookup_order() if q in ("alpha", "beta", "zulu")] == ["alpha", "beta", "zulu"]


def test_retry_job(store):
    failed_job("broken", "beta")
    assert retry_job("broken") == JobStatus.FAILED  # one queue holds it: no queue= needed
    job = get_job("broken", queue="beta")
    assert (job.status, job.attempt, len(job.errors)) == (JobStatus.WAITING, 0, 2)
    with pytest.raises(InvalidJobState, match="waiting"):
        retry_job("broken", queue="beta")
    delayed = tasks.add.enqueue({"a": 1, "b": 1}, delay=3600)
    assert retry_job(delayed, queue="default") == JobStatus.DELAYED
    assert get_job(delayed).status == JobStatus.WAITING


def test_retry_job_of_an_unknown_id_or_queue_raises_job_not_found(store):
    failed_job("broken", "beta")
    with pytest.raises(JobNotFound):
        retry_job("no-such-job")
    with pytest.raises(JobNotFound, match="alpha"):
        retry_job("broken", queue="alpha")
    assert get_job("broken", queue="beta").status == JobStatus.FAILED


def test_retry_job_with_one_id_in_two_queues_needs_queue(store):
    failed_job("broken", "alpha")
    failed_job("broken", "beta")
    with pytest.raises(AmbiguousJob, match="alpha, beta"):
        retry_job("broken")
    assert get_job("broken", queue="alpha").status == get_job("broken", queue="beta").status == JobStatus.FAILED
    assert retry_job("broken", queue="beta") == JobStatus.FAILED
    assert get_job("broken", queue="beta").status == JobStatus.WAITING
    assert get_job("broken", queue="alpha").status == JobStatus.FAILED  # the other queue's job is untouched


def test_delete_job(store):
    job_id = tasks.add.enqueue({"a": 1, "b": 2}, queue="beta")
    assert delete_job(job_id) == JobStatus.WAITING
    assert get_job(job_id) is None
    with pytest.raises(JobNotFound):
        delete_job(job_id)
    failed_job("broken", "beta")
    with pytest.raises(JobNotFound, match="alpha"):
        delete_job("broken", queue="alpha")
    assert delete_job("broken", queue="beta") == JobStatus.FAILED
    assert not store.client.exists(store.keys("beta").job("broken"), store.keys("beta").errors("broken"))


def test_delete_job_with_one_id_in_two_queues_needs_queue(store):
    tasks.add.enqueue({"a": 1, "b": 1}, job_id="dup", queue="alpha")
    tasks.add.enqueue({"a": 2, "b": 2}, job_id="dup", queue="beta")
    with pytest.raises(AmbiguousJob, match="pass queue="):
        delete_job("dup")
    assert get_job("dup", queue="alpha") and get_job("dup", queue="beta")  # nothing deleted
    assert delete_job("dup", queue="alpha") == JobStatus.WAITING
    assert get_job("dup", queue="alpha") is None
    assert get_job("dup").queue == "beta"
    assert delete_job("dup") == JobStatus.WAITING  # one left: no queue= needed


def test_delete_of_a_job_whose_entry_field_is_damaged_removes_it_from_every_status(store):
    """ZREM ran before an XDEL that failed on the bad entry id, and Lua does not roll back."""
    job_id = tasks.add.enqueue({"a": 1, "b": 2})
    keys = store.keys("default")
    store.client.xadd(keys.stream, {"job": "another"})  # XDEL checks ids only when the stream exists
    store.client.hset(keys.job(job_id), "entry", "not-a-stream-id")
    assert delete_job(job_id) == JobStatus.WAITING
    assert get_job(job_id) is None
    assert not store.client.exists(keys.job(job_id))
    assert store.client.zscore(keys.status(JobStatus.WAITING), job_id) is None
