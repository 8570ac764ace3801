"""How a stored job becomes a Django TaskResult (djtasks/results.py). No Redis needed."""

from __future__ import annotations

import datetime

import pytest

from tempotask_django.djtasks.compat import TaskResultStatus
from tempotask_django.djtasks.results import TaskCall, task_error, to_task_result, worker_ids
from tempotask_django.exceptions import WorkerLost
from tempotask_django.job import Job, JobStatus
from tests.testapp import dtasks

pytestmark = pytest.mark.djtasks

T0 = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


def job(status=JobStatus.WAITING, attempt=0, worker=None, errors=(), **fields) -> Job:
    data = TaskCall("tests.testapp.dtasks.echo", [1], {"k": "v"}, "default").to_data()
    return Job(
        id="j1",
        name="tempotask.django_task",
        queue="default",
        data=data,
        status=status,
        attempt=attempt,
        worker=worker,
        errors=list(errors),
        **fields,
    )


def failure(attempt, worker, kind="ValueError"):
    return {
        "attempt": attempt,
        "type": kind,
        "message": "boom",
        "traceback": f"Traceback...\n{kind}: boom\n",
        "worker": worker,
    }


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (JobStatus.WAITING, TaskResultStatus.READY),
        (JobStatus.DELAYED, TaskResultStatus.READY),
        (JobStatus.PROCESSING, TaskResultStatus.RUNNING),
        (JobStatus.COMPLETED, TaskResultStatus.SUCCESSFUL),
        (JobStatus.FAILED, TaskResultStatus.FAILED),
        (JobStatus.CANCELLED, TaskResultStatus.FAILED),  # Django has no cancelled status
    ],
)
def test_status_mapping(status, expected):
    attempt = 0 if status in (JobStatus.WAITING, JobStatus.DELAYED) else 1
    assert to_task_result(job(status, attempt=attempt, worker="w1")).status == expected


def test_a_waiting_job_has_no_attempt_fields():
    result = to_task_result(job(enqueued_at=T0, finished_at=T0))
    assert (result.started_at, result.last_attempted_at, result.finished_at) == (None, None, None)
    assert result.enqueued_at == T0 and result.worker_ids == [] and result.attempts == 0
    assert (result.task, result.args, result.kwargs, result.backend) == (dtasks.echo, [1], {"k": "v"}, "default")


def test_a_retry_pending_job_is_ready_and_not_finished():
    later = T0 + datetime.timedelta(seconds=3)
    result = to_task_result(
        job(JobStatus.DELAYED, attempt=1, worker="w1", errors=[failure(1, "w1")], started_at=T0, finished_at=later)
    )
    assert result.status == TaskResultStatus.READY and result.finished_at is None
    assert result.started_at == result.last_attempted_at == T0
    assert result.worker_ids == ["w1"] and result.errors[0].exception_class is ValueError


def test_a_completed_job_has_its_return_value():
    result = to_task_result(
        job(JobStatus.COMPLETED, attempt=1, worker="w1", result={"x": 1}, started_at=T0, finished_at=T0)
    )
    assert result.return_value == {"x": 1} and result.finished_at == T0


def test_worker_ids_give_one_worker_per_attempt():
    # attempt 1 failed on w1, attempt 2's worker died (Stalled, see reclaim.lua), attempt 3 runs on w3
    stalled = {"attempt": 2, "type": "Stalled", "message": "worker w2 stopped renewing its lease", "worker": "w2"}
    running = job(JobStatus.PROCESSING, attempt=3, worker="w3", errors=[failure(1, "w1"), stalled])
    assert worker_ids(running) == ["w1", "w2", "w3"]
    # a poison pill: the record names the worker that took it over, the error the one that ran it
    pill = {"attempt": 1, "type": "PoisonPill", "message": "delivered 6 times", "worker": "w1"}
    assert worker_ids(job(JobStatus.FAILED, attempt=1, worker="w9", errors=[pill])) == ["w1"]
    # records without a worker in their errors (older versions) still count every attempt
    assert worker_ids(job(JobStatus.PROCESSING, attempt=2, worker="w2", errors=[{"attempt": 1}])) == ["", "w2"]


def test_errors_carry_an_importable_class_path():
    assert task_error(failure(1, "w", "ValueError")).exception_class is ValueError
    assert task_error(failure(1, "w", "tests.testapp.ErrorX")).exception_class_path == "tests.testapp.ErrorX"
    lost = task_error({"attempt": 1, "type": "Stalled", "message": "worker w stopped renewing its lease"})
    assert lost.exception_class is WorkerLost
    assert lost.traceback == "Stalled: worker w stopped renewing its lease\n"
    entry_lost = task_error({"attempt": 1, "type": "EntryLost", "message": "its stream entry was lost"})
    assert entry_lost.exception_class is WorkerLost


def test_without_use_tz_datetimes_are_naive(settings):
    settings.USE_TZ = False
    result = to_task_result(
        job(JobStatus.COMPLETED, attempt=1, worker="w", enqueued_at=T0, started_at=T0, finished_at=T0)
    )
    assert result.enqueued_at.tzinfo is None and result.finished_at == T0.replace(tzinfo=None)


def test_a_job_whose_data_is_no_task_call_is_refused():
    with pytest.raises(ValueError, match="not a Django task call"):
        TaskCall.from_data({"a": 1})
    with pytest.raises(ValueError, match="args that are not a list"):
        TaskCall.from_data({"task": "x.y", "args": "no"})
