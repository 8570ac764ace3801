"""tempotask_django.testing and its pytest plugin, against a real Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import pytest
from django.contrib.auth.models import User

from tempotask_django import JobStatus, get_job, queue_stats
from tempotask_django.conf import get_settings
from tempotask_django.storage.connection import get_default_store
from tempotask_django.testing import isolated_keyspace, run_jobs
from tests.testapp import tasks, testing_tasks

pytestmark = pytest.mark.redis


@pytest.fixture(autouse=True)
def runs():
    testing_tasks.RUNS.clear()
    yield testing_tasks.RUNS
    testing_tasks.RUNS.clear()


@pytest.mark.django_db
def test_run_jobs_runs_every_due_job_in_this_thread_and_returns_them(store):
    User.objects.create(username="ada")  # uncommitted: only this thread's connection sees it
    first = testing_tasks.counts_users.enqueue({}, on_commit=False)
    second = testing_tasks.counts_users.enqueue({}, on_commit=False)
    ran = run_jobs()
    assert [(job.id, job.status) for job in ran] == [(first, JobStatus.COMPLETED), (second, JobStatus.COMPLETED)]
    assert ran[0].result == {"users": ["ada"], "thread": threading.get_ident()}
    assert run_jobs() == []
    assert queue_stats().consumers == 0  # the runner's consumer is gone with the run


def test_run_jobs_returns_one_job_per_attempt_and_leaves_later_retries_delayed(store):
    flaky = tasks.flaky.enqueue({"succeed_on": 2})  # retry_delay=0: due again at once
    slow = testing_tasks.fails_slowly.enqueue({})  # retry_delay=600
    ran = run_jobs()
    assert [(job.id, job.status, job.attempt) for job in ran] == [
        (flaky, JobStatus.WAITING, 1),
        (slow, JobStatus.DELAYED, 1),
        (flaky, JobStatus.COMPLETED, 2),
    ]
    assert get_job(slow).status == JobStatus.DELAYED


def test_run_jobs_takes_queues_first_listed_first_and_max_jobs(store):
    ids = [tasks.noop.enqueue() for _ in range(3)]
    other = tasks.noop.enqueue(queue="other")
    assert [job.id for job in run_jobs("other")] == [other]
    assert [job.id for job in run_jobs(["default"], max_jobs=2)] == ids[:2]
    assert [job.id for job in run_jobs(queues=["other", "default"])] == ids[2:]


def test_jobs_added_while_running_run_when_their_queue_is_listed(store, runs):
    parent = testing_tasks.spawns_elsewhere.enqueue({})
    [ran] = run_jobs("default")
    child = ran.result
    assert get_job(child, queue="elsewhere").status == JobStatus.WAITING
    [ran_child] = run_jobs("elsewhere")
    assert (ran_child.id, ran_child.parent_id, ran_child.result) == (child, parent, "completed")


def test_a_delayed_job_is_not_due(store):
    tasks.noop.enqueue(delay=3600)
    assert run_jobs() == []


def test_isolated_keyspace_has_its_own_jobs_and_deletes_its_keys(store):
    outside = tasks.noop.enqueue()
    with isolated_keyspace() as prefix:
        assert prefix.startswith("tempotask-test-") and get_settings().key_prefix == prefix
        assert get_job(outside) is None
        inside = tasks.noop.enqueue()
        assert [job.id for job in run_jobs()] == [inside]
        client = get_default_store().client
        assert any(client.scan_iter(match=f"{prefix}:*"))
    assert get_settings().key_prefix == "tempotask-test"
    assert not any(client.scan_iter(match=f"{prefix}:*"))
    assert get_job(inside) is None and get_job(outside).status == JobStatus.WAITING


def test_isolated_keyspace_takes_a_prefix(store):
    with isolated_keyspace("mine") as prefix:
        tasks.noop.enqueue()
        assert prefix == "mine" == get_settings().key_prefix
    assert not any(store.client.scan_iter(match="mine:*"))


def test_the_keyspace_fixture(redis_client, tempotask_keyspace):
    assert get_settings().key_prefix == tempotask_keyspace != "tempotask-test"
    job_id = tasks.noop.enqueue()
    assert [job.id for job in run_jobs()] == [job_id]


def test_the_immediate_fixture(redis_client, tempotask_immediate):
    assert get_settings().immediate
    assert get_job(tasks.echoes.enqueue({"text": "now"})).result == {"text": "now"}


PLAIN_PROJECT_TEST = """
def test_plain():
    assert True
"""


def test_the_plugin_leaves_projects_without_django_settings_alone(tmp_path):
    """A project that is not a Django project (or does not configure one) still runs its tests; the
    fixtures are listed."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_plain.py").write_text(textwrap.dedent(PLAIN_PROJECT_TEST))
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--fixtures"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "tempotask_keyspace" in run.stdout and "tempotask_immediate" in run.stdout
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0 and "1 passed" in run.stdout, run.stdout + run.stderr
