"""JobRunner: running one claimed job, without Redis."""

from __future__ import annotations

import pytest

from tempotask_django.decorators import Task
from tempotask_django.registry import TaskRegistry
from tempotask_django.worker import runner as runner_module
from tempotask_django.worker.runner import JobRunner


def fields(job_id: str) -> dict[str, str]:
    return {"id": job_id, "name": "add", "queue": "default", "data": '{"a": 1, "b": 2}', "attempt": "1"}


def add(job, ctx):
    return job.data["a"] + job.data["b"]


def always_fails(job, ctx):
    raise ValueError("no")


@pytest.fixture
def runner() -> JobRunner:
    tasks = TaskRegistry()
    tasks.register(Task(func=add, name="add"))
    tasks.register(Task(func=always_fails, name="always_fails"))
    return JobRunner(tasks, {}, lambda job, message: None, lambda *a, **k: "", "test-worker")


def test_old_database_connections_are_closed_around_jobs(runner, monkeypatch):
    calls = []
    clock = [1000.0]
    monkeypatch.setattr(runner_module, "close_old_connections", lambda: calls.append(clock[0]))
    monkeypatch.setattr(runner_module.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(runner_module, "_checked", runner_module.threading.local())

    assert runner.run_sync(fields("a")).result == 3
    assert len(calls) == 2, "before and after the first job of a thread"
    runner.run_sync(fields("b"))
    assert len(calls) == 3, "a job right after another: only after it (the check after the previous one is fresh)"
    clock[0] += runner_module.RECENT_CHECK_SECONDS
    runner.run_sync(fields("c"))
    assert len(calls) == 5, "a thread idle for a while checks before its next job again"


def test_old_database_connections_are_closed_after_a_failing_job(runner, monkeypatch):
    calls = []
    monkeypatch.setattr(runner_module, "close_old_connections", lambda: calls.append(1))
    monkeypatch.setattr(runner_module, "_checked", runner_module.threading.local())
    outcome = runner.run_sync({**fields("a"), "name": "always_fails"})
    assert not outcome.succeeded
    assert len(calls) == 2
