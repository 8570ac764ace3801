"""The Tasks framework's contract on TempotaskBackend, run by a real ``runworkers`` process on real Redis.

The same tests run on Django 5.2 (the django-tasks backport) and Django 6.x (django.tasks).
"""

from __future__ import annotations

import datetime
import signal

import pytest
from django.utils import timezone

from tempotask_django import JobStatus, add_job, get_job, list_jobs
from tempotask_django.backends import TempotaskBackend
from tempotask_django.djtasks import compat
from tempotask_django.djtasks.compat import InvalidTask, TaskResultStatus, default_task_backend
from tests.conftest import WorkerProcesses
from tests.helpers import wait_until
from tests.testapp import dtasks

pytestmark = [pytest.mark.redis, pytest.mark.djtasks, pytest.mark.slow]

# The module's worker serves these queues; "slow" and "prio" are left to tests that start their own.
WORKER_QUEUES = ("default", "other")


@pytest.fixture(scope="module")
def worker(redis_server, tmp_path_factory):
    """One ``runworkers`` process for the module (each test still gets a flushed database)."""
    processes = WorkerProcesses(tmp_path_factory.mktemp("django-worker"))
    process = processes.start("--queues", *WORKER_QUEUES, "--concurrency", "4")
    yield process
    processes.stop_all()


@pytest.fixture
def live(worker, redis_client, ledger):
    """A clean database with the module's worker running; returns the ledger."""
    assert worker.poll() is None, WorkerProcesses.output(worker)
    return ledger


def finished(result, timeout: float = 20.0):
    """Refresh ``result`` until it has finished; returns it."""

    def done():
        result.refresh()
        return result.is_finished

    wait_until(done, timeout=timeout, message=f"task {result.id} to finish")
    return result


def test_runs_in_the_worker_and_refresh_fills_every_field(live):
    result = dtasks.calculate_meaning_of_life.enqueue()
    finished(result)
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 42
    assert result.enqueued_at <= result.started_at <= result.finished_at
    assert result.last_attempted_at == result.started_at
    assert result.attempts == 1 and result.errors == []
    assert result.worker_ids == [get_job(result.id).worker]
    assert result.worker_ids[0].split(":")[1] != ""  # host:pid:token of the worker process


def test_async_task_runs_on_the_workers_event_loop(live):
    results = [dtasks.add_async.enqueue(n, 1) for n in range(5)]
    assert [finished(result).return_value for result in results] == [1, 2, 3, 4, 5]
    assert {get_job(result.id).name for result in results} == {"tempotask.django_task_async"}


def test_args_and_return_values_are_json(live):
    result = dtasks.echo.enqueue(1.5, "two", [3], when=datetime.date(2025, 1, 2).isoformat(), nested={7: ("a",)})
    assert result.kwargs == {"when": "2025-01-02", "nested": {"7": ["a"]}}  # as JSON stores it
    assert finished(result).return_value == {"args": [1.5, "two", [3]], "kwargs": result.kwargs}


@pytest.mark.parametrize(
    ("task", "exception", "message"),
    [
        (dtasks.failing_value_error, ValueError, "This task failed due to ValueError"),
        (dtasks.failing_system_exit, SystemExit, "This task failed due to SystemExit"),
    ],
)
def test_a_failure_is_recorded_with_class_and_traceback(live, task, exception, message):
    result = finished(task.enqueue())
    assert result.status == TaskResultStatus.FAILED
    with pytest.raises(ValueError, match="Task failed"):
        result.return_value  # noqa: B018
    assert result.enqueued_at <= result.started_at <= result.finished_at
    assert result.attempts == 1 and len(result.errors) == 1
    assert result.errors[0].exception_class is exception
    assert result.errors[0].traceback.endswith(f"{exception.__name__}: {message}\n")
    assert "Traceback (most recent call last)" in result.errors[0].traceback


def test_a_return_value_json_cannot_hold_fails_the_task(live):
    result = finished(dtasks.complex_return_value.enqueue())
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class is TypeError


def test_per_task_options_retry_and_the_context_counts_attempts(live):
    result = finished(dtasks.flaky.enqueue(succeed_on=3))
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 3
    assert result.attempts == 3 and len(result.worker_ids) == 3
    assert [error.exception_class for error in result.errors] == [RuntimeError, RuntimeError]
    attempts = live.entries("attempt")
    assert [entry["attempt"] for entry in attempts] == [1, 2, 3]
    assert [len(entry["worker_ids"]) for entry in attempts] == [1, 2, 3]
    assert get_job(result.id).max_attempts == 3


def test_without_options_a_task_gets_one_attempt(live):
    result = finished(dtasks.failing_value_error.enqueue())
    assert get_job(result.id).max_attempts == 1 and result.attempts == 1


def test_takes_context_gets_the_task_result(live):
    result = finished(dtasks.get_task_id.enqueue())
    assert result.return_value == result.id


def test_run_after_defers_the_task(live):
    run_after = timezone.now() + datetime.timedelta(seconds=1.5)
    result = dtasks.record.using(run_after=run_after).enqueue("later")
    assert result.task.run_after == run_after
    job = get_job(result.id)
    assert job.status == JobStatus.DELAYED and abs((job.run_at - run_after).total_seconds()) < 0.01
    assert default_task_backend.get_result(result.id).status == TaskResultStatus.READY
    finished(result)
    assert result.started_at >= run_after.replace(microsecond=run_after.microsecond // 1000 * 1000)
    assert result.task.run_after == run_after  # get_result() rebuilds the Task as it was enqueued


def test_queue_name_is_the_tempotask_queue(live):
    result = dtasks.calculate_meaning_of_life.using(queue_name="other").enqueue()
    assert get_job(result.id).queue == "other"
    assert finished(result).task.queue_name == "other"
    with pytest.raises(InvalidTask, match="not valid for backend"):
        dtasks.noop.using(queue_name="unknown")


def test_priorities_order_django_tasks_and_tempotask_jobs_together(workers, ledger):
    for priority in (-100, 0, 100, 50):
        dtasks.record.using(queue_name="prio", priority=priority).enqueue(f"django {priority}")
    native = add_job("record", {"n": "native"}, queue="prio", priority=60)
    assert get_job(native).priority == 60
    process = workers.start("--queues", "prio", "--concurrency", "1", "--burst")
    assert process.wait(timeout=30) == 0, workers.output(process)
    order = [entry.get("label") or entry["data"]["n"] for entry in ledger.entries("ran")]
    assert order == ["django 100", "native", "django 50", "django 0", "django -100"]


def test_signals_fire_in_the_right_process_at_the_right_moment(live, worker):
    enqueued = []

    def on_enqueued(sender, task_result, **kwargs):
        enqueued.append((sender, task_result.id, task_result.status, get_job(task_result.id) is not None))

    compat.task_enqueued.connect(on_enqueued)
    try:
        ok = dtasks.calculate_meaning_of_life.enqueue()
        bad = dtasks.failing_value_error.enqueue()
    finally:
        compat.task_enqueued.disconnect(on_enqueued)
    assert enqueued == [(TempotaskBackend, ok.id, "READY", True), (TempotaskBackend, bad.id, "READY", True)]
    finished(ok), finished(bad)

    def signal_events():
        return {(e["event"], e["job"]): e for e in live.entries() if e["event"] in ("task_started", "task_finished")}

    events = wait_until(lambda: len(signal_events()) == 4 and signal_events(), message="4 signals")
    for result, final in ((ok, "SUCCESSFUL"), (bad, "FAILED")):
        started, done = events[("task_started", result.id)], events[("task_finished", result.id)]
        assert started["pid"] == done["pid"] == worker.pid
        assert (started["status"], started["attempts"], started["sender"]) == ("RUNNING", 1, "TempotaskBackend")
        assert (done["status"], done["stored_status"]) == (final, final)  # sent once the outcome is stored
    assert events[("task_finished", bad.id)]["errors"] == ["builtins.ValueError"]


def test_task_finished_waits_for_the_last_attempt(live):
    result = finished(dtasks.flaky.enqueue(succeed_on=2))
    wait_until(lambda: live.entries("task_finished"), message="task_finished")
    assert [entry["attempts"] for entry in live.entries("task_started")] == [1, 2]
    assert [(entry["status"], entry["attempts"]) for entry in live.entries("task_finished")] == [("SUCCESSFUL", 2)]
    assert result.attempts == 2


def test_both_kinds_of_job_run_side_by_side_and_show_in_the_inspection_api(live):
    native = add_job("add", {"a": 1, "b": 2})
    result = dtasks.calculate_meaning_of_life.enqueue()
    finished(result)
    wait_until(lambda: get_job(native).status == JobStatus.COMPLETED, message="the native job")
    completed = {job.id: job for job in list_jobs("default", "completed")}
    assert completed[native].result == 3 and completed[result.id].result == 42
    assert completed[result.id].name == "tempotask.django_task"
    assert get_job(result.id).data["task"] == "tests.testapp.dtasks.calculate_meaning_of_life"


@pytest.mark.slow
def test_a_task_of_a_killed_worker_is_finished_by_another(workers, ledger):

    overrides = {"STALLED_TIMEOUT": 2}
    result = dtasks.sleep_then_return.using(queue_name="slow").enqueue(0.5)
    doomed = workers.start("--queues", "slow", overrides=overrides)
    wait_until(lambda: ledger.entries("start"), timeout=20, message="the task to start")
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=10)
    survivor = workers.start("--queues", "slow", overrides=overrides)
    finished(result, timeout=30)
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == survivor.pid
    assert result.attempts == 2 and result.worker_ids[0].split(":")[1] == str(doomed.pid)
    assert [error.exception_class_path for error in result.errors] == ["tempotask_django.exceptions.WorkerLost"]
    assert [entry["attempt"] for entry in ledger.entries("start")] == [1, 2]  # TaskContext.attempt


def test_get_result_in_another_process_sees_the_task_running(workers, ledger):
    result = dtasks.sleep_then_return.using(queue_name="slow").enqueue(3)
    process = workers.start("--queues", "slow")
    wait_until(lambda: ledger.entries("start"), timeout=20, message="the task to start")
    running = default_task_backend.get_result(result.id)  # this process is not the worker's
    assert running.status == TaskResultStatus.RUNNING and not running.is_finished
    assert running.started_at is not None and running.finished_at is None
    assert running.last_attempted_at == running.started_at and running.attempts == 1
    assert [worker_id.split(":")[1] for worker_id in running.worker_ids] == [str(process.pid)]
    result.refresh()
    assert result.status == TaskResultStatus.RUNNING
    assert ledger.entries("end") == []  # all of that was read while it ran
    finished(result)
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == process.pid
