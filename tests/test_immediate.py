"""Immediate mode: enqueue runs the job at once, in the caller, on the in-memory Redis. No Redis needed.

The behaviour shared with Redis mode (results, retries to failed, child jobs, logs, signals,
on_commit) is also checked by tests of tests/worker/test_worker.py and tests/test_producer.py that
run in both modes (the ``both_modes`` fixture).
"""

from __future__ import annotations

import importlib.util
import threading
import time

import pytest
from django.contrib.auth.models import User
from django.db import transaction

from tempotask_django import JobStatus, add_jobs, get_job, list_jobs, queue_stats, signals
from tempotask_django.conf import build_settings, validate
from tempotask_django.exceptions import ConfigurationError
from tempotask_django.storage import memory
from tempotask_django.storage.connection import get_default_store
from tempotask_django.testing import immediate_mode
from tests.testapp import dtasks, tasks, testing_tasks

NO_REDIS = "redis://127.0.0.1:1/0"  # nothing answers on port 1


@pytest.fixture(autouse=True)
def immediate():
    """Immediate mode, with a REDIS_URL nothing answers and no app context (its ledger needs Redis)."""
    testing_tasks.RUNS.clear()
    with immediate_mode(REDIS_URL=NO_REDIS, CONTEXT=None):
        yield
    testing_tasks.RUNS.clear()


def test_mode_defaults_to_redis_and_takes_only_known_modes():
    assert build_settings({}).mode == "redis"
    assert build_settings({"MODE": "immediate"}).immediate
    [problem] = validate({"MODE": "sync"})
    assert problem.check_id == "tempotask.E003" and "MODE" in problem.message and "immediate" in problem.message


def test_enqueue_runs_the_job_at_once_and_get_job_reads_it():
    job_id = tasks.echoes.enqueue({"text": "hello"})
    job = get_job(job_id)
    assert (job.status, job.result, job.attempt) == (JobStatus.COMPLETED, {"text": "hello"}, 1)
    assert [line["message"] for line in job.logs] == ["hello", {"text": "hello"}]
    assert [j.id for j in list_jobs(status="completed")] == [job_id]
    stats = queue_stats()
    assert (stats.waiting, stats.processing, stats.completed, stats.consumers) == (0, 0, 1, 0)


def test_a_failing_job_is_failed_with_its_error():
    job_id = tasks.echoes.enqueue({"text": "broken", "fail": True})
    job = get_job(job_id)
    assert job.status == JobStatus.FAILED
    assert [(e["type"], e["message"]) for e in job.errors] == [("ValueError", "broken")]


def test_retries_run_again_at_once_skipping_their_delay():
    started = time.monotonic()
    job_id = testing_tasks.fails_slowly.enqueue({})
    job = get_job(job_id)
    assert (job.status, job.attempt, job.result, len(job.errors)) == (JobStatus.COMPLETED, 3, 3, 2)
    assert [attempt for name, _, attempt in testing_tasks.RUNS] == [1, 2, 3]
    assert time.monotonic() - started < 5  # the 10-minute retry delays were skipped
    failed = tasks.echoes.enqueue({"text": "x", "fail": True}, attempts=3, retry_delay=600)
    assert (get_job(failed).status, get_job(failed).attempt) == (JobStatus.FAILED, 3)


def test_delay_and_run_at_run_at_once():
    job_id = tasks.echoes.enqueue({"text": "later"}, delay=3600)
    assert get_job(job_id).status == JobStatus.COMPLETED


def test_child_jobs_run_after_their_parent_is_recorded_in_the_same_call():
    parent_id = testing_tasks.spawns_elsewhere.enqueue({})
    parent = get_job(parent_id)
    child = get_job(parent.result, queue="elsewhere")
    assert (parent.status, child.status, child.parent_id) == (JobStatus.COMPLETED, JobStatus.COMPLETED, parent_id)
    assert [name for name, _, _ in testing_tasks.RUNS] == ["spawns_elsewhere", "child_of"]
    assert child.result == "completed"  # the parent was recorded before its child started


def test_an_active_job_id_is_deduplicated_and_a_finished_one_is_not():
    job_id = testing_tasks.enqueues_itself.enqueue({}, job_id="only-once")
    assert get_job(job_id).result == "only-once"  # ctx.add_job returned the running job's id...
    assert len(testing_tasks.RUNS) == 1  # ...and added nothing: the job was processing
    testing_tasks.enqueues_itself.enqueue({}, job_id="only-once")
    assert len(testing_tasks.RUNS) == 2  # a completed job's id may be used again, as in Redis mode


def test_add_jobs_runs_every_job():
    ids = add_jobs([{"name": "echoes", "data": {"text": str(n)}} for n in range(3)])
    assert [get_job(job_id).result for job_id in ids] == [{"text": "0"}, {"text": "1"}, {"text": "2"}]


def test_signals_are_sent_in_the_order_a_worker_sends_them():
    heard = []

    def receiver(signal, **kwargs):
        heard.append(signal)

    lifecycle = [signals.job_enqueued, signals.job_started, signals.job_completed, signals.job_failed]
    for signal in lifecycle:
        signal.connect(receiver, sender=tasks.echoes)
    try:
        tasks.echoes.enqueue({"text": "ok"})
        tasks.echoes.enqueue({"text": "no", "fail": True})
    finally:
        for signal in lifecycle:
            signal.disconnect(receiver, sender=tasks.echoes)
    assert heard == [
        signals.job_enqueued,
        signals.job_started,
        signals.job_completed,
        signals.job_enqueued,
        signals.job_started,
        signals.job_failed,
    ]


@pytest.mark.django_db
def test_the_handler_runs_in_the_callers_thread_and_sees_its_transaction():
    User.objects.create(username="ada")
    job = get_job(testing_tasks.counts_users.enqueue({}, on_commit=False))
    assert job.result == {"users": ["ada"], "thread": threading.get_ident()}
    User.objects.create(username="grace")  # the test's transaction is still usable
    assert User.objects.count() == 2


@pytest.mark.django_db
def test_inside_a_transaction_the_job_runs_on_commit(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        User.objects.create(username="ada")
        job_id = testing_tasks.counts_users.enqueue({})
        assert get_job(job_id) is None and testing_tasks.RUNS == []
    assert get_job(job_id).result["users"] == ["ada"]


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_transaction_runs_nothing():
    with pytest.raises(RuntimeError), transaction.atomic():
        job_id = testing_tasks.counts_users.enqueue({})
        raise RuntimeError("rollback")
    assert get_job(job_id) is None and testing_tasks.RUNS == []


def test_each_immediate_mode_block_starts_empty():
    job_id = tasks.echoes.enqueue({"text": "first"})
    with immediate_mode(REDIS_URL=NO_REDIS, CONTEXT=None):
        assert get_job(job_id) is None
    assert get_default_store().client.dbsize() == 0


@pytest.mark.parametrize("missing", ["fakeredis", "lupa"])
def test_without_the_testing_extra_the_error_names_it(monkeypatch, missing):
    monkeypatch.setattr(memory, "_server", None)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == missing else real(name, *a))
    with pytest.raises(ConfigurationError, match=r'pip install "tempotask-django\[testing\]"'):
        tasks.echoes.enqueue({"text": "never runs"})


@pytest.mark.djtasks
def test_a_django_task_runs_at_once_and_its_result_is_ready():
    result = dtasks.calculate_meaning_of_life.enqueue()
    result.refresh()
    assert (result.status.name, result.return_value, result.attempts) == ("SUCCESSFUL", 42, 1)
