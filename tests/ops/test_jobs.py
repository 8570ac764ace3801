"""``manage.py tempotask retry|delete|cancel JOB`` and ``enqueue TASK``: the admin's job actions."""

from __future__ import annotations

import json

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.core.management.base import CommandError

from tempotask_django import api
from tempotask_django.job import JobStatus
from tests.helpers import drain
from tests.ops.conftest import tempotask

pytestmark = [pytest.mark.redis, pytest.mark.django_db]


@pytest.fixture
def jobs(store):
    """A failed, a completed, a waiting and a delayed job in "default"."""
    api.add_job("always_fails", {"why": "test"}, job_id="bad-1", on_commit=False)
    api.add_job("add", {"a": 1, "b": 2}, job_id="done-1", on_commit=False)
    drain(["default"])
    api.add_job("add", {"a": 2, "b": 2}, job_id="wait-1", on_commit=False)
    api.add_job("add", {"a": 3, "b": 3}, job_id="later-1", delay=3600, on_commit=False)
    return store


def status(job_id: str, queue: str | None = None) -> JobStatus | None:
    job = api.get_job(job_id, queue=queue)
    return None if job is None else job.status


# -- retry ------------------------------------------------------------------------------------------
def test_retry_queues_a_failed_job_again(jobs):
    assert tempotask("retry", "bad-1") == "Job bad-1 is queued again (it was failed)."
    assert status("bad-1") == JobStatus.WAITING


def test_retry_refuses_a_job_that_is_neither_failed_nor_delayed(jobs):
    message = r"^job done-1 is completed: only failed, cancelled or delayed jobs can be retried$"
    with pytest.raises(CommandError, match=message):
        tempotask("retry", "done-1")
    assert status("done-1") == JobStatus.COMPLETED


def test_an_unknown_job_is_refused(jobs):
    for action in ("retry", "delete", "cancel"):
        with pytest.raises(CommandError, match=r"^no job with id 'ghost'$"):
            tempotask(action, "ghost")


def test_a_job_id_in_several_queues_needs_queue(jobs):
    api.add_job("add", {"a": 1, "b": 1}, job_id="wait-1", queue="slow", on_commit=False)
    with pytest.raises(CommandError, match=r"^jobs with id 'wait-1' exist in queues default, slow; pass --queue"):
        tempotask("delete", "wait-1")
    assert tempotask("delete", "wait-1", "--queue", "slow") == "Job wait-1 (waiting) was deleted."
    assert status("wait-1", queue="slow") is None
    assert status("wait-1", queue="default") == JobStatus.WAITING


def test_queue_given_must_exist_and_hold_the_job(jobs):
    with pytest.raises(CommandError, match=r"^no queue named 'nope'"):
        tempotask("retry", "bad-1", "--queue", "nope")
    with pytest.raises(CommandError, match=r"^no job with id 'bad-1' in queue 'slow'$"):
        tempotask("retry", "bad-1", "--queue", "slow")


# -- delete and cancel ------------------------------------------------------------------------------
def test_delete_removes_a_job_in_any_status(jobs):
    assert tempotask("delete", "done-1") == "Job done-1 (completed) was deleted."
    assert tempotask("delete", "wait-1") == "Job wait-1 (waiting) was deleted."
    assert status("done-1") is None and status("wait-1") is None


@pytest.mark.parametrize(("job_id", "was"), [("wait-1", "waiting"), ("later-1", "delayed")])
def test_cancel_ends_a_job_that_has_not_started_as_cancelled(jobs, job_id, was):
    assert tempotask("cancel", job_id) == f"Job {job_id} ({was}) was cancelled: it will not run."
    assert status(job_id) == JobStatus.CANCELLED
    drain(["default"])
    assert status(job_id) == JobStatus.CANCELLED  # it never ran


@pytest.mark.parametrize(("job_id", "was"), [("done-1", "completed"), ("bad-1", "failed")])
def test_cancel_refuses_a_job_that_ran(jobs, job_id, was):
    with pytest.raises(CommandError, match=rf"^job {job_id} is {was}: only waiting, delayed or processing jobs"):
        tempotask("cancel", job_id)
    assert status(job_id) == was


def test_cancel_of_a_running_job_asks_its_worker_to_stop_it(jobs):
    claimed = jobs.claim("default", "w1", 1).jobs[0]["id"]
    assert tempotask("cancel", claimed) == (
        f"Job {claimed} is running: its worker was asked to stop it; it ends cancelled."
    )
    assert api.get_job(claimed).cancel_requested


def test_retry_runs_a_cancelled_job_again(jobs):
    tempotask("cancel", "wait-1")
    assert tempotask("retry", "wait-1") == "Job wait-1 is queued again (it was cancelled)."
    assert status("wait-1") == JobStatus.WAITING


# -- enqueue ----------------------------------------------------------------------------------------
def test_enqueue_adds_a_job_with_the_given_data_and_options(store):
    output = tempotask(
        "enqueue", "add", "--data", '{"a": 20, "b": 22}', "--queue", "slow", "--priority", "7", "--job-id", "cli-1"
    )
    assert output == "Job cli-1 (add) was added to slow as waiting."
    job = api.get_job("cli-1", queue="slow")
    assert (job.name, job.data, job.priority, job.status) == ("add", {"a": 20, "b": 22}, 7, JobStatus.WAITING)
    drain(["slow"])
    assert api.get_job("cli-1", queue="slow").result == 42


def test_enqueue_with_delay_and_defaults(store):
    output = tempotask("enqueue", "slow", "--data", '{"seconds": 0}', "--delay", "60", "--attempts", "3")
    job_id = output.split()[1]
    job = api.get_job(job_id, queue="slow")  # the task's own queue
    assert output == f"Job {job_id} (slow) was added to slow as delayed."
    assert (job.status, job.max_attempts) == (JobStatus.DELAYED, 3)


def test_enqueue_an_active_job_id_again_adds_nothing(store):
    tempotask("enqueue", "add", "--data", '{"a": 1, "b": 1}', "--job-id", "same")
    assert tempotask("enqueue", "add", "--data", '{"a": 9, "b": 9}', "--job-id", "same") == (
        "A job with id same is already waiting; nothing was added."
    )
    assert api.get_job("same").data == {"a": 1, "b": 1}


def test_enqueue_refuses_an_unknown_task(store):
    with pytest.raises(CommandError, match=r"^no task named 'nope' is registered; registered tasks: .*\badd\b"):
        tempotask("enqueue", "nope", "--data", "{}")
    assert api.list_jobs("default") == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--data", "{not json"), r"^--data: This is not valid JSON: .*line 1, column 2"),
        (("--data", "{}", "--priority", "high"), r"^--priority: Enter a whole number\.$"),
        (("--data", "{}", "--priority", "5000"), r"^--priority: "),
        (("--data", "{}", "--delay", "-1"), r"^--delay: "),
        (("--data", "{}", "--queue", "a b"), r"^--queue: queue 'a b' is not a valid queue name"),
        (("--data", "{}", "--job-id", "a b"), r"^--job-id: job_id 'a b' must be"),
    ],
)
def test_enqueue_refuses_bad_values_with_the_admin_forms_messages(store, args, message):
    with pytest.raises(CommandError, match=message):
        tempotask("enqueue", "add", *args)
    assert api.list_jobs("default") == []


# -- permissions and the admin log ------------------------------------------------------------------
def test_with_user_the_admin_log_records_each_job_action(jobs, operator):
    tempotask("retry", "bad-1", "--user", "operator")
    tempotask("cancel", "later-1", "--user", "operator")
    tempotask("delete", "done-1", "--user", "operator")
    tempotask("enqueue", "add", "--data", '{"a": 1, "b": 1}', "--job-id", "new-1", "--user", "operator")
    entries = LogEntry.objects.order_by("pk")
    assert [(e.user, e.action_flag, e.object_id, e.object_repr, e.change_message) for e in entries] == [
        (operator, CHANGE, "default/bad-1", "job bad-1 on default", "Retried (was failed)."),
        (operator, CHANGE, "default/later-1", "job later-1 on default", "Cancelled (was delayed)."),
        (operator, DELETION, "default/done-1", "job done-1 on default", "Deleted (was completed)."),
        (operator, ADDITION, "default/new-1", "job new-1 on default", "Enqueued add (waiting)."),
    ]


@pytest.mark.parametrize(
    ("args", "permission"),
    [
        (("retry", "bad-1"), "retry_job"),
        (("delete", "wait-1"), "delete_job"),
        (("cancel", "wait-1"), "cancel_job"),
        (("enqueue", "add", "--data", json.dumps({"a": 1, "b": 1})), "enqueue_job"),
    ],
)
def test_a_user_without_the_permission_is_refused_and_nothing_changes(jobs, viewer, args, permission):
    before = {job_id: status(job_id) for job_id in ("bad-1", "done-1", "wait-1", "later-1")}
    waiting = jobs.inspect.count_jobs("default", "waiting")
    with pytest.raises(CommandError, match=rf"^user 'viewer' may not do this: .* tempotask_django\.{permission}$"):
        tempotask(*args, "--user", "viewer")
    assert {job_id: status(job_id) for job_id in before} == before
    assert jobs.inspect.count_jobs("default", "waiting") == waiting
    assert LogEntry.objects.count() == 0
