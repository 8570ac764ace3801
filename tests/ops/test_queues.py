"""``manage.py tempotask pause|resume|retry-failed|purge``: the admin's queue actions from a shell."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.core.management.base import CommandError

from tempotask_django import api
from tempotask_django.models import PERMISSIONS
from tests.admin.conftest import grant
from tests.helpers import drain, is_paused
from tests.ops.conftest import tempotask

pytestmark = [pytest.mark.redis, pytest.mark.django_db]


@pytest.fixture
def history(store):
    """Two failed and one completed job in "default"."""
    api.add_job("always_fails", {"why": "a"}, job_id="bad-1", on_commit=False)
    api.add_job("always_fails", {"why": "b"}, job_id="bad-2", on_commit=False)
    api.add_job("add", {"a": 1, "b": 2}, job_id="good-1", on_commit=False)
    drain(["default"])
    assert store.inspect.count_jobs("default", "failed") == 2
    return store


def test_pause_and_resume_flip_the_queue_and_tell_what_that_means(store):
    assert tempotask("pause", "default") == (
        "default is paused: workers take no new jobs from it; running ones finish."
    )
    assert is_paused(store, "default")
    assert tempotask("resume", "default") == "default is resumed."
    assert not is_paused(store, "default")
    assert LogEntry.objects.count() == 0  # no --user: nobody to write the log for


def test_retry_failed_queues_every_failed_job_again(history):
    assert tempotask("retry-failed", "default") == "2 failed job(s) of default are queued again."
    assert history.inspect.count_jobs("default", "failed") == 0
    assert sorted(history.inspect.list_job_ids("default", "waiting")) == ["bad-1", "bad-2"]


def test_purge_deletes_one_status_of_history(history):
    assert tempotask("purge", "default", "failed") == "2 failed job(s) of default were deleted."
    assert history.inspect.count_jobs("default", "failed") == 0
    assert history.inspect.count_jobs("default", "completed") == 1
    assert api.get_job("bad-1") is None


@pytest.mark.parametrize("status", ["waiting", "processing", "delayed", "everything"])
def test_purge_refuses_any_status_but_completed_failed_or_cancelled(history, status):
    with pytest.raises(CommandError, match=rf"^cannot purge '{status}' jobs: only completed, failed or cancelled"):
        tempotask("purge", "default", status)
    assert history.inspect.count_jobs("default", "failed") == 2


@pytest.mark.parametrize("action", ["pause", "resume", "retry-failed"])
def test_an_unknown_queue_is_refused_with_the_known_ones(store, action):
    with pytest.raises(CommandError, match=r"^no queue named 'nope'; known queues: crons, default, slow$"):
        tempotask(action, "nope")
    assert not is_paused(store, "nope")


def test_a_malformed_queue_name_is_refused(store):
    with pytest.raises(CommandError, match="no queue named 'a b'"):
        tempotask("purge", "a b", "failed")


def test_with_user_the_admin_log_records_each_action(history, operator):
    tempotask("pause", "default", "--user", "operator")
    tempotask("resume", "default", "--user", "operator")
    tempotask("retry-failed", "default", "--user", "operator")
    tempotask("purge", "default", "completed", "--user", "operator")
    entries = LogEntry.objects.order_by("pk")
    assert [(e.user, e.action_flag, e.object_id, e.object_repr, e.change_message) for e in entries] == [
        (operator, CHANGE, "default", "queue default", "Paused."),
        (operator, CHANGE, "default", "queue default", "Resumed."),
        (operator, CHANGE, "default", "queue default", "Retried 2 failed job(s)."),
        (operator, DELETION, "default", "queue default", "Purged 1 completed job(s)."),
    ]
    assert {entry.content_type.app_label for entry in entries} == {"tempotask_django"}


@pytest.mark.parametrize(
    ("args", "permission"),
    [
        (("pause", "default"), "pause_queue"),
        (("resume", "default"), "pause_queue"),
        (("retry-failed", "default"), "retry_job"),
        (("purge", "default", "failed"), "purge_queue"),
    ],
)
def test_a_user_without_the_permission_is_refused_and_nothing_changes(history, viewer, args, permission):
    with pytest.raises(CommandError, match=rf"^user 'viewer' may not do this: .* tempotask_django\.{permission}$"):
        tempotask(*args, "--user", "viewer")
    assert not is_paused(history, "default")
    assert history.inspect.count_jobs("default", "failed") == 2
    assert LogEntry.objects.count() == 0


def test_an_unknown_user_is_refused(store, db):
    with pytest.raises(CommandError, match=r"^no user named 'ghost'$"):
        tempotask("pause", "default", "--user", "ghost")
    assert not is_paused(store, "default")


def test_staff_status_is_needed_as_in_the_admin(store, django_user_model):
    """The admin opens to active staff only: every permission does not make up for it."""
    grant(django_user_model.objects.create_user("outsider", password="pw"), *PERMISSIONS)
    with pytest.raises(CommandError, match="may not do this"):
        tempotask("pause", "default", "--user", "outsider")
    assert not is_paused(store, "default")
