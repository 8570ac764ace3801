"""@task and the registry. No Redis needed."""

from __future__ import annotations

import datetime

import pytest

from tempotask_django import task
from tempotask_django.exceptions import ConfigurationError, TaskNotRegistered
from tempotask_django.registry import registry
from tests.testapp import tasks


@pytest.fixture
def cleanup():
    names = []
    yield names
    for name in names:
        registry.unregister(name)


def test_tasks_are_discovered_from_installed_apps():
    assert registry.get("add") is tasks.add
    assert tasks.add.name == "add" and tasks.slow.queue == "slow"


def test_name_defaults_to_the_function_name_and_async_is_detected():
    assert tasks.async_add.is_async and not tasks.add.is_async


def test_duplicate_name_names_both_modules(cleanup):
    def add(job, ctx):
        return None

    with pytest.raises(ConfigurationError, match=r"tests\.testapp\.tasks\.add and tests\.test_registry"):
        task(add)


def test_invalid_cron_fails_at_import(cleanup):
    with pytest.raises(ConfigurationError, match="not a valid cron expression"):
        task(cron="every minute")(lambda job, ctx: None)
    with pytest.raises(ConfigurationError, match="unknown timezone"):
        task(name="tz", cron="* * * * *", timezone="Mars/Olympus")(lambda job, ctx: None)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"attempts": 0}, "attempts"),
        ({"priority": 5000}, "priority"),
        ({"backoff": "linear"}, "backoff"),
        ({"queue": "no spaces"}, "queue"),
        ({"retry_delay": -1}, "retry_delay"),
        ({"data": {"x": object()}}, "data"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": "30"}, "timeout"),
    ],
)
def test_invalid_options_fail_at_import(options, message, cleanup):
    with pytest.raises(ConfigurationError, match=message):
        task(name="invalid", **options)(lambda job, ctx: None)


def test_cron_task_is_accepted(cleanup):
    cleanup.append("every_minute")
    cron_task = task(name="every_minute", cron="*/5 * * * *", timezone="Europe/Paris", data={"x": 1})(
        lambda job, ctx: None
    )
    assert (cron_task.cron, cron_task.timezone, cron_task.cron_data) == ("*/5 * * * *", "Europe/Paris", {"x": 1})


def test_unknown_task_lookup_lists_known_ones():
    with pytest.raises(TaskNotRegistered, match=r"No task named 'nope'.*add"):
        registry.get("nope")


def test_calling_a_task_runs_the_handler_directly():
    class Job:
        data = {"a": 1, "b": 2}
        id = "x"
        attempt = 1

    class Ctx:
        class ledger:
            @staticmethod
            def record(*args, **kwargs):
                return None

    assert tasks.add(Job(), Ctx()) == 3


def test_using_checks_the_options_it_changes_and_leaves_the_task_alone():
    with pytest.raises(ConfigurationError, match="attempts"):
        tasks.add.using(attempts=0)
    copy = tasks.add.using(queue="other", retry_delay=datetime.timedelta(seconds=3), priority=None)
    assert (copy.name, copy.queue, copy.retry_delay, copy.priority) == ("add", "other", 3.0, 0)
    assert registry.get("add") is tasks.add and tasks.add.queue is None
