"""Limit options are checked where the user writes them: @task, enqueue, QUEUES and manage.py check."""

from __future__ import annotations

import pytest
from django.core.checks import run_checks

from tempotask_django import task
from tempotask_django.conf import build_settings
from tempotask_django.decorators import Task
from tempotask_django.exceptions import ConfigurationError
from tempotask_django.limits import Rate, parse_rate
from tempotask_django.registry import registry


@pytest.fixture
def cleanup():
    names: list[str] = []
    yield names
    for name in names:
        registry.unregister(name)


@pytest.mark.parametrize(
    ("text", "rate"),
    [("100/m", Rate(100, 60_000)), ("1/s", Rate(1, 1000)), (" 5 / h ", Rate(5, 3_600_000))],
)
def test_rates_parse(text, rate):
    assert parse_rate(text) == rate


@pytest.mark.parametrize("bad", ["100", "0/s", "10/d", "x/s", "-1/s", 10, None, "1.5/s", "100001/s", True])
def test_bad_rates_are_refused_with_the_forms_they_may_take(bad):
    with pytest.raises(ValueError, match=r'"N/s", "N/m" or "N/h"'):
        parse_rate(bad)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rate_limit": "10/day"}, "rate_limit must be"),
        ({"max_concurrency": 0}, "max_concurrency must be an integer"),
        ({"max_concurrency": True}, "max_concurrency must be an integer"),
        ({"limit_key": "tenant_id"}, "limit_key needs rate_limit or max_concurrency"),
        ({"limit_key": "", "max_concurrency": 1}, "limit_key must be"),
    ],
)
def test_bad_task_limits_fail_at_decoration(options, message):
    with pytest.raises(ConfigurationError, match=message):

        @task(name="limited_bad", **options)
        def limited_bad(job, ctx):
            pass

    assert "limited_bad" not in registry


def test_using_checks_the_limits_it_changes(cleanup):
    @task(name="limited_ok", rate_limit="5/s")
    def limited_ok(job, ctx):
        pass

    cleanup.append("limited_ok")
    assert limited_ok.using(max_concurrency=2).max_concurrency == 2
    with pytest.raises(ConfigurationError, match="rate_limit must be"):
        limited_ok.using(rate_limit="5 per second")


@pytest.mark.redis
def test_enqueue_refuses_data_without_the_limit_key_field(cleanup, redis_client):
    @task(name="per_tenant", max_concurrency=1, limit_key="tenant_id")
    def per_tenant(job, ctx):
        pass

    cleanup.append("per_tenant")
    with pytest.raises(ValueError, match="must be a dict with a 'tenant_id' field"):
        per_tenant.enqueue({"other": 1}, on_commit=False)
    with pytest.raises(ValueError, match="must be a string or an integer"):
        per_tenant.enqueue({"tenant_id": [1]}, on_commit=False)
    with pytest.raises(ValueError, match="must be a string or an integer"):
        per_tenant.enqueue_many([{"tenant_id": 1}, {"tenant_id": 2.5}], on_commit=False)


def test_queue_rate_limit_is_checked_with_the_other_queue_overrides():
    with pytest.raises(ConfigurationError, match=r"\['RATE_LIMIT'\] must be .*N/s.*tempotask.E005"):
        build_settings({"QUEUES": {"emails": {"RATE_LIMIT": "ten per second"}}})
    assert build_settings({"QUEUES": {"emails": {"RATE_LIMIT": "10/s"}}}).for_queue("emails").rate_limit == Rate(
        10, 1000
    )


def test_manage_py_check_reports_a_task_with_invalid_limits(cleanup):
    bad = Task(func=lambda job, ctx: None, name="built_by_hand", max_concurrency=-3, module="tests")
    registry.register(bad)
    cleanup.append("built_by_hand")
    errors = [e for e in run_checks() if e.id == "tempotask.E020"]
    assert [e.msg for e in errors] == [
        "task 'built_by_hand' (tests): max_concurrency must be an integer from 1 to 100000, not -3"
    ]


def test_manage_py_check_reports_a_cron_schedule_without_the_limit_key_field(cleanup):
    bad = Task(
        func=lambda job, ctx: None,
        name="cron_per_tenant",
        max_concurrency=1,
        limit_key="tenant",
        cron="@hourly",
        cron_data={"other": 1},
        module="tests",
    )
    registry.register(bad)
    cleanup.append("cron_per_tenant")
    errors = [e.msg for e in run_checks() if e.id == "tempotask.E020"]
    assert errors == [
        "task 'cron_per_tenant' (tests): its cron schedule's data: task 'cron_per_tenant' has limit_key='tenant': "
        "its data must be a dict with a 'tenant' field"
    ]
