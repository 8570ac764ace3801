"""Schedules from @task(cron=...) and TEMPOTASK["CRONS"], and their system checks. No Redis."""

from __future__ import annotations

import pytest
from django.core.checks import run_checks
from django.test import override_settings

from tempotask_django import task
from tempotask_django.cron import collect_schedules, schedule_problems
from tempotask_django.exceptions import ConfigurationError
from tempotask_django.registry import registry
from tests.settings import TEMPOTASK

REPORT = {"task": "record", "cron": "0 3 * * *"}


def problems(crons) -> list[tuple[str, str]]:
    return [(check_id, message) for check_id, message, _ in schedule_problems(raw={"CRONS": crons})]


def test_task_schedule_takes_the_task_options_and_django_time_zone():
    [nightly] = [s for s in collect_schedules(raw={}) if s.name == "nightly_digest"]
    assert (nightly.task, nightly.expression, nightly.timezone) == ("nightly_digest", "0 3 * * *", "Europe/Paris")
    assert (nightly.queue, nightly.data, nightly.attempts, nightly.priority) == ("crons", {"kind": "digest"}, 2, 5)
    with override_settings(TIME_ZONE="Asia/Tokyo"):
        [hourly] = [s for s in collect_schedules(raw={}) if s.name == "hourly_sweep"]
    assert hourly.timezone == "Asia/Tokyo" and hourly.queue == "default"


def test_settings_schedules_run_one_task_with_different_data():
    crons = {
        "report-paris": {**REPORT, "data": {"city": "Paris"}, "timezone": "Europe/Paris", "queue": "reports"},
        "report-tokyo": {**REPORT, "data": {"city": "Tokyo"}, "timezone": "Asia/Tokyo", "attempts": 3, "priority": 7},
    }
    schedules = {s.name: s for s in collect_schedules(raw={"CRONS": crons, "DEFAULT_QUEUE": "main"})}
    paris, tokyo = schedules["report-paris"], schedules["report-tokyo"]
    assert (paris.task, paris.data, paris.queue) == ("record", {"city": "Paris"}, "reports")
    assert paris.timezone == "Europe/Paris"
    assert (tokyo.queue, tokyo.attempts, tokyo.priority, tokyo.source) == ("main", 3, 7, "settings")
    assert tokyo.job_id(1_700_000_000) == "cron:report-tokyo:1700000000"


@pytest.mark.parametrize(
    ("crons", "check_id", "message"),
    [
        ([], "tempotask.E007", "must be a dict"),
        ({"x": "0 3 * * *"}, "tempotask.E007", "must be a dict"),
        ({"bad name": REPORT}, "tempotask.E007", "schedule name"),
        ({"x": {"task": "record"}}, "tempotask.E007", "needs 'cron'"),
        ({"x": {**REPORT, "every": 5}}, "tempotask.E007", "unknown key"),
        ({"x": {**REPORT, "queue": "no spaces"}}, "tempotask.E007", "queue"),
        ({"x": {**REPORT, "attempts": 0}}, "tempotask.E007", "attempts"),
        ({"x": {**REPORT, "data": {"a": object()}}}, "tempotask.E007", "data"),
        ({"nightly_digest": REPORT}, "tempotask.E007", "name of a task's own"),
        ({"x": {**REPORT, "task": "no_such_task"}}, "tempotask.E008", "'no_such_task', which is not registered"),
        ({"x": {**REPORT, "cron": "every night"}}, "tempotask.E009", "not a valid cron expression"),
        ({"x": {**REPORT, "timezone": "Mars/Olympus"}}, "tempotask.E009", "unknown timezone"),
    ],
)
def test_each_mistake_has_a_check_id_and_names_the_schedule(crons, check_id, message):
    [(found_id, text)] = problems(crons)
    assert found_id == check_id and message in text
    if isinstance(crons, dict):
        assert repr(next(iter(crons))) in text


def test_manage_check_reports_cron_mistakes_and_collect_refuses_them():
    crons = {"a": {**REPORT, "task": "ghost"}, "b": {**REPORT, "cron": "61 * * * *"}}
    with override_settings(TEMPOTASK={**TEMPOTASK, "CRONS": crons}):
        errors = [e for e in run_checks() if e.id.startswith("tempotask.")]
        assert sorted(e.id for e in errors) == ["tempotask.E008", "tempotask.E009"]
        with pytest.raises(ConfigurationError, match="ghost"):
            collect_schedules()


def test_valid_crons_pass_the_checks():
    with override_settings(TEMPOTASK={**TEMPOTASK, "CRONS": {"r": REPORT}, "CRON_CATCHUP_WINDOW": 600}):
        assert [e for e in run_checks() if e.id.startswith("tempotask.")] == []


def test_catchup_window_is_validated():
    with override_settings(TEMPOTASK={**TEMPOTASK, "CRON_CATCHUP_WINDOW": 0}):
        assert [e.id for e in run_checks() if e.id.startswith("tempotask.")] == ["tempotask.E003"]


def test_task_names_that_are_not_job_id_safe_get_a_stable_id_part():
    # Stable across processes and releases: a beat started after an upgrade must name a tick as before.
    name = "reports/nightly"
    task(name=name, cron="0 1 * * *")(lambda job, ctx: None)
    try:
        [schedule] = [s for s in collect_schedules(raw={}) if s.name == name]
        assert schedule.job_id(10) == "cron:h-a49485c0d93cae9b:10"  # sha1 of the name, first 16 hex digits
    finally:
        registry.unregister(name)


def test_schedule_data_larger_than_max_payload_bytes_is_reported_by_check():
    crons = {"big": {**REPORT, "data": {"blob": "x" * 200}}, "small": {**REPORT, "data": {"n": 1}}}
    with override_settings(TEMPOTASK={**TEMPOTASK, "CRONS": crons, "MAX_PAYLOAD_BYTES": 100}):
        errors = [e for e in run_checks() if e.id.startswith("tempotask.")]
        assert [(e.id, "'big'" in e.msg, "MAX_PAYLOAD_BYTES" in e.msg) for e in errors] == [
            ("tempotask.E010", True, True)
        ]
        assert "reference" in errors[0].hint
        # The beat still runs the others: the oversize schedule is refused tick by tick, not at start.
        assert [s.name for s in collect_schedules() if s.name in crons] == ["big", "small"]


def test_a_task_schedule_with_oversize_data_is_reported_by_check():
    task(name="fat_cron", cron="0 1 * * *", data={"blob": "x" * 200})(lambda job, ctx: None)
    try:
        with override_settings(TEMPOTASK={**TEMPOTASK, "MAX_PAYLOAD_BYTES": 100}):
            assert [(e.id, "'fat_cron'" in e.msg) for e in run_checks() if e.id.startswith("tempotask.")] == [
                ("tempotask.E010", True)
            ]
    finally:
        registry.unregister("fat_cron")
