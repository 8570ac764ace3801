"""job.set_progress: stored with the job (one script per write, throttled), read back by get_job."""

from __future__ import annotations

import json
import threading

import pytest

from tempotask_django import add_job, get_job
from tempotask_django.job import Job, JobStatus
from tempotask_django.storage.records import JobSpec
from tempotask_django.storage.store import RedisStore
from tempotask_django.worker import Worker
from tempotask_django.worker.progress import ProgressWriter
from tests.helpers import drain, wait_until

pytestmark = pytest.mark.redis


@pytest.fixture
def writes(monkeypatch):
    """Every progress write the store sends (the script calls), in order."""
    sent: list[dict] = []
    original = RedisStore.set_progress

    def spy(self, queue, job_id, entry_id, progress_json):
        sent.append(json.loads(progress_json))
        return original(self, queue, job_id, entry_id, progress_json)

    monkeypatch.setattr(RedisStore, "set_progress", spy)
    return sent


@pytest.mark.parametrize("name", ["reports_progress", "reports_progress_async"])
def test_the_last_progress_is_stored_and_fast_reports_are_throttled(both_modes, store, writes, name):
    job_id = add_job(name, on_commit=False)
    drain()
    job = get_job(job_id)
    assert job.status == JobStatus.COMPLETED
    assert job.progress["percent"] == 100 and job.progress["info"] == {"step": 100}
    assert isinstance(job.progress["t"], int)  # the Redis clock's, when it was stored
    # 101 reports in a few milliseconds: the first is written, the last when the handler returns.
    assert writes[0]["percent"] == 0 and writes[-1]["percent"] == 100
    assert len(writes) <= 4


def test_progress_shows_while_the_job_runs(store, redis_client):
    job_id = add_job("reports_half_then_waits", on_commit=False)
    worker = Worker(["default"], concurrency=1)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        running = wait_until(
            lambda: (job := get_job(job_id)) and job.progress and job, message="the progress while the job runs"
        )
        assert running.status == JobStatus.PROCESSING
        assert running.progress["percent"] == 50 and running.progress["info"] == "half way"
    finally:
        redis_client.set("tests:progress:go", "1")
        wait_until(lambda: get_job(job_id).status == JobStatus.COMPLETED, message="the job to finish")
        worker.request_stop()
        thread.join(10)


def test_a_held_report_is_written_when_its_interval_is_over(store):
    store.enqueue(JobSpec(id="p1", name="add", queue="default", data="{}"))
    (fields,) = store.claim("default", "w1", 1).jobs
    job = Job.from_fields(fields)
    writer = ProgressWriter(store, min_interval=0.2)
    job._progress_sink = writer.report
    job.set_progress(10)
    job.set_progress(20)
    job.set_progress(30, {"rows": 3})
    assert store.inspect.get_job("default", "p1").progress["percent"] == 10
    wait_until(lambda: store.inspect.get_job("default", "p1").progress["percent"] == 30, timeout=2)
    assert store.inspect.get_job("default", "p1").progress["info"] == {"rows": 3}


def test_a_worker_that_lost_the_job_cannot_write_its_progress(store):
    store.enqueue(JobSpec(id="p2", name="add", queue="default", data="{}"))
    (fields,) = store.claim("default", "w1", 1).jobs
    assert store.set_progress("default", "p2", fields["entry"], '{"percent": 5, "info": null}')
    assert not store.set_progress("default", "p2", "1-1", '{"percent": 6, "info": null}')
    store.delete_job("default", "p2")
    assert not store.set_progress("default", "p2", fields["entry"], '{"percent": 7, "info": null}')
    assert not store.client.exists(store.keys("default").job("p2"))


@pytest.mark.parametrize("percent", [-1, 100.5, float("nan"), True, "50", None])
def test_a_bad_percent_is_refused_where_it_is_given(percent):
    with pytest.raises(ValueError, match="percent must be a number from 0 to 100"):
        Job(id="x", name="x", queue="q").set_progress(percent)


def test_info_must_be_small_json():
    job = Job(id="x", name="x", queue="q")
    with pytest.raises(TypeError):
        job.set_progress(1, {"when": object()})
    with pytest.raises(ValueError, match="at most 4096 bytes"):
        job.set_progress(1, "x" * 5000)
