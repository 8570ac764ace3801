"""The Tasks framework's contract on TempotaskBackend, the enqueue side (real Redis, no worker running).

The same tests run on Django 5.2 (the django-tasks backport) and Django 6.x (django.tasks); what runs
in a worker is in test_backends_runworkers.py.
"""

from __future__ import annotations

import math

import django
import pytest
from asgiref.sync import async_to_sync
from django.core.exceptions import SuspiciousOperation
from django.utils import timezone

from tempotask_django import JobStatus, add_job, get_job, list_jobs
from tempotask_django.backends import TempotaskBackend
from tempotask_django.djtasks import compat
from tempotask_django.djtasks.compat import (
    InvalidTask,
    TaskResultDoesNotExist,
    TaskResultMismatch,
    TaskResultStatus,
    default_task_backend,
    task_backends,
)
from tests.helpers import drain
from tests.testapp import dtasks

pytestmark = [pytest.mark.redis, pytest.mark.djtasks]


def test_the_framework_of_this_django_version_is_used():
    assert ("django.tasks" if django.VERSION >= (6, 0) else "django_tasks") == compat.SOURCE
    backend = task_backends["default"]
    assert isinstance(backend, TempotaskBackend) and default_task_backend.alias == "default"
    assert (backend.supports_defer, backend.supports_async_task) == (True, True)
    assert (backend.supports_get_result, backend.supports_priority) == (True, True)


@pytest.mark.parametrize("task", [dtasks.noop, dtasks.noop_async], ids=["sync", "async"])
def test_enqueue_returns_a_ready_result_and_adds_a_job(redis_client, task):
    result = task.enqueue(1, two=(3, 4))
    assert result.status == TaskResultStatus.READY and not result.is_finished
    assert (result.started_at, result.last_attempted_at, result.finished_at) == (None, None, None)
    with pytest.raises(ValueError, match="Task has not finished yet"):
        result.return_value  # noqa: B018
    assert (result.task, result.args, result.kwargs, result.attempts) == (task, [1], {"two": [3, 4]}, 0)
    assert result.backend == "default" and result.errors == [] and result.worker_ids == []
    assert result.enqueued_at is not None and result.enqueued_at <= timezone.now()
    job = get_job(result.id)
    assert job.status == JobStatus.WAITING and job.queue == "default"
    assert job.name == ("tempotask.django_task_async" if task is dtasks.noop_async else "tempotask.django_task")
    assert job.data["task"] == task.module_path and job.data["args"] == [1]


def test_aenqueue_and_aget_result(redis_client):
    result = async_to_sync(dtasks.noop_async.aenqueue)("x")
    assert result.status == TaskResultStatus.READY
    assert async_to_sync(default_task_backend.aget_result)(result.id) == result
    assert async_to_sync(dtasks.noop_async.aget_result)(result.id) == result


def test_get_result_from_the_store_equals_the_enqueued_result(redis_client):
    result = default_task_backend.enqueue(dtasks.noop, [], {"a": 1})
    assert default_task_backend.get_result(result.id) == result
    assert dtasks.noop.get_result(result.id) == result
    with pytest.raises(TaskResultMismatch):
        dtasks.echo.get_result(result.id)


@pytest.mark.parametrize("result_id", ["no-such-result", "123", "not valid!", ""])
def test_get_missing_result(redis_client, result_id):
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(result_id)
    with pytest.raises(TaskResultDoesNotExist):
        async_to_sync(default_task_backend.aget_result)(result_id)


def test_a_tempotask_job_is_not_a_task_result(redis_client):
    job_id = add_job("noop")
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(job_id)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((object(),), TypeError, "Unsupported type"),
        ((math.nan,), ValueError, "NaN"),
        ((b"\xff",), ValueError, "Unsupported value"),
    ],
)
def test_bad_arguments_are_refused_at_enqueue(redis_client, args, error, match):
    with pytest.raises(error, match=match):
        dtasks.echo.enqueue(*args)
    assert list_jobs("default", "waiting") == []


def test_priority_range_is_djangos(redis_client):
    with pytest.raises(InvalidTask, match="priority"):
        dtasks.noop.using(priority=101)
    result = dtasks.noop.using(priority=-100).enqueue()
    assert get_job(result.id).priority == -100 and default_task_backend.get_result(result.id).task.priority == -100


def test_a_task_not_found_at_its_module_path_is_refused_at_enqueue(redis_client):
    with pytest.raises(InvalidTask, match="cannot be found at its module path"):
        dtasks.renamed.enqueue()


def test_a_stored_path_that_is_no_task_is_suspicious(redis_client, store):

    result = dtasks.noop.enqueue()
    job = get_job(result.id)
    store.client.hset(
        store.keys("default").job(result.id), "data", '{"task": "os.path.join", "args": [], "kwargs": {}}'
    )
    with pytest.raises(SuspiciousOperation, match="does not point to a Task"):
        default_task_backend.get_result(job.id)


def test_history_trimming_applies_to_task_results(store, settings):

    settings.TEMPOTASK = {**settings.TEMPOTASK, "MAX_JOBS_PER_STATUS": 2}
    results = [dtasks.noop.enqueue(n) for n in range(4)]
    drain()
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(results[0].id)
    assert default_task_backend.get_result(results[-1].id).status == TaskResultStatus.SUCCESSFUL


def test_a_cancelled_task_result_is_failed_with_job_cancelled(redis_client):
    from tempotask_django import cancel_job
    from tempotask_django.djtasks.compat import task_finished

    finished = []

    def receiver(sender, task_result, **kwargs):
        finished.append(task_result)

    task_finished.connect(receiver)
    try:
        result = default_task_backend.enqueue(dtasks.noop, [], {})
        cancel_job(result.id)
    finally:
        task_finished.disconnect(receiver)
    stored = default_task_backend.get_result(result.id)
    assert stored.status == TaskResultStatus.FAILED
    assert [error.exception_class_path for error in stored.errors] == ["tempotask_django.exceptions.JobCancelled"]
    assert [(r.id, r.status) for r in finished] == [(result.id, TaskResultStatus.FAILED)]
    assert [error.exception_class_path for error in finished[0].errors] == ["tempotask_django.exceptions.JobCancelled"]
