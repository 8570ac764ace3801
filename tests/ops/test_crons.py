"""``manage.py tempotask crons list|pause|resume|run``: the admin's schedule actions from a shell."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.core.management.base import CommandError

from tempotask_django import api, list_crons
from tempotask_django.cron import CronBeat
from tempotask_django.ops.crons import HEADERS
from tests.ops.conftest import tempotask

pytestmark = [pytest.mark.redis, pytest.mark.django_db]


@pytest.fixture
def schedules(store):
    """The test app's schedules, registered as a beat registers them: hourly_sweep and nightly_digest."""
    CronBeat().sync()
    return store


def paused() -> dict[str, bool]:
    return {cron.name: cron.paused for cron in list_crons()}


def test_list_shows_every_registered_schedule(schedules):
    tempotask("crons", "pause", "nightly_digest")
    run_id = tempotask("crons", "run", "hourly_sweep").split("job ")[1].split(" ")[0]
    header, *rows = [re.split(r"\s{2,}", line.strip()) for line in tempotask("crons", "list").splitlines()]
    assert header == list(HEADERS)
    hourly, nightly = rows
    assert hourly[:5] == ["hourly_sweep", "hourly_sweep", "@hourly", "UTC", "default"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:00:00", hourly[5])
    assert hourly[6:] == ["-", f"{run_id} (waiting)", "no", "allow", "task"]
    assert nightly[:5] == ["nightly_digest", "nightly_digest", "0 3 * * *", "Europe/Paris", "crons"]
    assert nightly[6:] == ["-", "-", "yes", "allow", "task"]


def test_list_as_json(schedules):
    crons = json.loads(tempotask("crons", "list", "--json"))
    assert [cron["name"] for cron in crons] == ["hourly_sweep", "nightly_digest"]
    nightly = crons[1]
    assert nightly["expression"] == "0 3 * * *" and nightly["timezone"] == "Europe/Paris"
    assert (nightly["queue"], nightly["data"]) == ("crons", {"kind": "digest"})
    assert (nightly["paused"], nightly["runs"]) == (False, 0)
    assert (nightly["source"], nightly["overlap"], nightly["skipped"]) == ("task", "allow", 0)
    assert nightly["next_run"].endswith("+00:00")  # ISO 8601, UTC


def test_list_without_schedules_says_how_they_get_there(store):
    assert tempotask("crons", "list").startswith("No cron schedule is registered in Redis")
    assert json.loads(tempotask("crons", "list", "--json")) == []


def test_pause_and_resume(schedules):
    assert tempotask("crons", "pause", "nightly_digest") == (
        "Cron schedule nightly_digest is paused: its ticks are skipped until it is resumed."
    )
    assert paused() == {"hourly_sweep": False, "nightly_digest": True}
    assert tempotask("crons", "resume", "nightly_digest") == (
        "Cron schedule nightly_digest is resumed: it fires again from its next tick."
    )
    assert paused() == {"hourly_sweep": False, "nightly_digest": False}


def test_run_enqueues_a_job_of_the_schedule_now(schedules):
    output = tempotask("crons", "run", "nightly_digest")
    job_id = output.split("job ")[1].split(" ")[0]
    assert output == f"Cron schedule nightly_digest ran now: job {job_id} was added to crons."
    job = api.get_job(job_id, queue="crons")
    assert (job.name, job.data, job.max_attempts, job.priority) == ("nightly_digest", {"kind": "digest"}, 2, 5)


@pytest.mark.parametrize("action", ["pause", "resume", "run"])
def test_an_unknown_schedule_is_refused(schedules, action):
    with pytest.raises(CommandError, match=r"^no cron schedule named 'nope' is registered in Redis"):
        tempotask("crons", action, "nope")


def test_with_user_the_admin_log_records_each_action(schedules, operator):
    tempotask("crons", "pause", "hourly_sweep", "--user", "operator")
    tempotask("crons", "resume", "hourly_sweep", "--user", "operator")
    job_id = tempotask("crons", "run", "hourly_sweep", "--user", "operator").split("job ")[1].split(" ")[0]
    entries = LogEntry.objects.order_by("pk")
    assert [(e.user, e.action_flag, e.object_id, e.object_repr, e.change_message) for e in entries] == [
        (operator, CHANGE, "cron:hourly_sweep", "cron schedule hourly_sweep", "Paused."),
        (operator, CHANGE, "cron:hourly_sweep", "cron schedule hourly_sweep", "Resumed."),
        (operator, ADDITION, f"default/{job_id}", f"job {job_id} on default", "Ran cron schedule hourly_sweep now."),
    ]


@pytest.mark.parametrize(
    ("args", "permission"),
    [
        (("pause", "hourly_sweep"), "pause_cron"),
        (("resume", "hourly_sweep"), "pause_cron"),
        (("run", "hourly_sweep"), "run_cron"),
    ],
)
def test_a_user_without_the_permission_is_refused_and_nothing_changes(schedules, viewer, args, permission):
    with pytest.raises(CommandError, match=rf"^user 'viewer' may not do this: .* tempotask_django\.{permission}$"):
        tempotask("crons", *args, "--user", "viewer")
    assert paused() == {"hourly_sweep": False, "nightly_digest": False}
    assert api.list_jobs("default") == []
    assert LogEntry.objects.count() == 0


def test_a_viewer_may_list(schedules, viewer):
    assert "hourly_sweep" in tempotask("crons", "list", "--user", "viewer")
