"""TempotaskBackend configuration: OPTIONS, system checks, enqueue on commit, reserved task names."""

from __future__ import annotations

import pytest
from django.core import checks
from django.db import transaction

from tempotask_django import checks as our_checks
from tempotask_django import get_job, task
from tempotask_django.djtasks import options
from tempotask_django.djtasks.compat import task_backends
from tempotask_django.exceptions import ConfigurationError
from tests.testapp import dtasks

pytestmark = pytest.mark.djtasks

BACKEND = "tempotask_django.backends.TempotaskBackend"


@pytest.fixture
def backend_with(settings):
    """Reconfigure the "default" TASKS backend; returns the new backend instance."""

    def configure(queues=("default",), **opts):
        settings.TASKS = {"default": {"BACKEND": BACKEND, "QUEUES": list(queues), "OPTIONS": opts}}
        return task_backends["default"]

    return configure


def ids(messages) -> list[str]:
    return [message.id for message in messages]


def test_valid_configuration_has_no_problems(backend_with):
    backend = backend_with(
        ATTEMPTS=3,
        RETRY_DELAY=1.5,
        BACKOFF="exponential",
        ENQUEUE_ON_COMMIT=True,
        PER_TASK={"tests.testapp.dtasks.flaky": {"ATTEMPTS": 5}},
    )
    assert backend.check() == []


def test_bad_options_are_reported_with_ids(backend_with):
    backend = backend_with(
        ATTEMPTS=0,
        BACKOF="fixed",
        ENQUEUE_ON_COMMIT="yes",
        PER_TASK={"flaky": {"ATTEMPTS": 2}, "tests.testapp.dtasks.nothing_here": {"RETRY_DELAY": -1, "QUEUE": "x"}},
    )
    messages = backend.check()
    assert sorted(ids(messages)) == sorted(
        [
            "tempotask.E102",
            "tempotask.E101",
            "tempotask.E102",
            "tempotask.E103",
            "tempotask.E102",
            "tempotask.E101",
            "tempotask.W101",
            "tempotask.W101",
        ]
    )
    text = "\n".join(message.msg for message in messages)
    assert "TASKS['default']['OPTIONS'] has an unknown key 'BACKOF'" in text
    assert "attempts must be an integer from 1 to 1000, not 0" in text
    assert "names 'tests.testapp.dtasks.nothing_here', which is not a task" in text


def test_bad_options_refuse_to_enqueue(redis_client, backend_with):
    backend_with(ATTEMPTS="three")
    with pytest.raises(ConfigurationError, match=r"TASKS\['default'\]\['OPTIONS'\]\['ATTEMPTS'\].*E102"):
        dtasks.noop.enqueue()


def test_options_parse_into_a_retry_policy_per_task():
    parsed = options.parse({"ATTEMPTS": 2, "BACKOFF": "exponential", "PER_TASK": {"a.b": {"ATTEMPTS": 7}}}, "x")
    assert parsed.retry_for("a.b") == options.RetryPolicy(7, None, "exponential")
    assert parsed.retry_for("c.d") == options.RetryPolicy(2, None, "exponential")
    assert parsed.enqueue_on_commit is False


def test_queue_names_must_be_tempotask_queue_names(backend_with):
    backend = backend_with(queues=("default", "has space"))
    assert ids(backend.check()) == ["tempotask.E104"]


def test_the_app_must_be_installed(backend_with, monkeypatch):
    from tempotask_django import backends

    backend = backend_with()
    monkeypatch.setattr(backends.apps, "is_installed", lambda name: name != "tempotask_django")
    assert ids(backend.check()) == ["tempotask.E105"]


def test_the_system_check_framework_reports_backend_problems(backend_with):
    backend_with(ATTEMPTS=-1)
    found = [message for message in checks.run_checks() if str(message.id).startswith("tempotask.")]
    assert ids(found) == ["tempotask.E102"]


def test_a_missing_tasks_framework_is_reported(monkeypatch, backend_with):
    backend_with()
    monkeypatch.setattr(our_checks, "tasks_framework_available", lambda: False)
    assert ids(our_checks.check_tasks_framework()) == ["tempotask.E106"]
    monkeypatch.setattr(our_checks, "uses_tasks_backend", lambda: False)
    assert our_checks.check_tasks_framework() == []


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_enqueue_is_immediate_inside_a_transaction_by_default(redis_client):
    with transaction.atomic():
        result = dtasks.noop.enqueue()
        assert get_job(result.id) is not None and result.enqueued_at is not None


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_enqueue_on_commit_waits_for_the_commit(redis_client, backend_with):
    backend_with(ENQUEUE_ON_COMMIT=True)
    with transaction.atomic():
        result = dtasks.noop.enqueue()
        assert get_job(result.id) is None and result.enqueued_at is None
    assert get_job(result.id) is not None and result.enqueued_at is not None
    with transaction.atomic():
        rolled_back = dtasks.noop.enqueue()
        transaction.set_rollback(True)
    assert get_job(rolled_back.id) is None


def test_task_names_starting_with_tempotask_are_reserved():
    with pytest.raises(ConfigurationError, match="reserved"):
        task(name="tempotask.mine")(lambda job, ctx: None)
