"""ENQUEUE_REPLICAS: an enqueue returns once that many replicas hold the job (WAIT), else raises
NotReplicated naming the shortfall. The suite's own Redis has no replica: every write falls short."""

from __future__ import annotations

import pytest

from tempotask_django import JobStatus, NotReplicated, get_job
from tempotask_django.conf import validate
from tempotask_django.storage.connection import reset_default_store
from tempotask_django.testing import run_jobs
from tests.testapp import tasks

pytestmark = pytest.mark.redis


@pytest.fixture
def replicas(redis_client, settings):
    def use(count: int) -> None:
        settings.TEMPOTASK = {**settings.TEMPOTASK, "ENQUEUE_REPLICAS": count, "ENQUEUE_REPLICAS_TIMEOUT": 0.05}
        reset_default_store()

    return use


def test_without_enough_replicas_enqueue_raises_naming_the_shortfall_and_the_job_is_queued(replicas):
    replicas(1)
    with pytest.raises(NotReplicated, match=r"only 0 of the 1 replicas .* job\(s\) j1 within 0.05s") as raised:
        tasks.noop.enqueue(job_id="j1")
    assert (raised.value.job_ids, raised.value.acknowledged, raised.value.required) == (["j1"], 0, 1)
    assert get_job("j1").status == JobStatus.WAITING  # on the master: a retry with the id keeps one job
    with pytest.raises(NotReplicated):
        tasks.noop.enqueue(job_id="j1")
    assert get_job("j1").status == JobStatus.WAITING


def test_bulk_enqueue_raises_for_the_whole_batch(replicas):
    replicas(2)
    with pytest.raises(NotReplicated, match="short by 2 replica") as raised:
        tasks.noop.enqueue_many([{"n": n} for n in range(3)])
    assert len(raised.value.job_ids) == 3


def test_zero_asks_for_no_replica(replicas):
    replicas(0)
    assert get_job(tasks.noop.enqueue()).status == JobStatus.WAITING


def test_the_setting_is_checked():
    assert [p[0] for p in validate({"ENQUEUE_REPLICAS": -1})] == ["tempotask.E003"]
    assert [p[0] for p in validate({"ENQUEUE_REPLICAS_TIMEOUT": 0})] == ["tempotask.E003"]


def test_an_enqueue_replacing_a_finished_job_declares_its_keys_and_still_waits_for_replicas(replicas):
    # Replacing a finished job's record, logs and errors takes keys the caller did not know of: the
    # script asks for them, and the call goes again with them declared, WAIT included.
    replicas(0)
    tasks.noop.enqueue(job_id="again")
    run_jobs(queues=["default"])
    assert get_job("again").status == JobStatus.COMPLETED
    replicas(1)
    with pytest.raises(NotReplicated):
        tasks.noop.enqueue(job_id="again")
    assert get_job("again").status == JobStatus.WAITING
