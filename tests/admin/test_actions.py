"""Every dashboard action, allowed and denied: POST only, CSRF-checked, permission-checked, logged."""

from __future__ import annotations

import html
import json

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from tempotask_django import list_crons, pause_cron
from tempotask_django.cron import CronBeat
from tempotask_django.models import PERMISSIONS
from tempotask_django.storage.connection import get_default_store
from tests.admin.conftest import client_for, grant, redis_state
from tests.helpers import is_paused, status_of

pytestmark = pytest.mark.django_db


def _status(job_id):
    return status_of(get_default_store(), "default", job_id)


def _paused():
    return is_paused(get_default_store(), "default")


def _cron(name):
    return next(cron for cron in list_crons() if cron.name == name)


# name -> (url name, url args, POST data, permission, LogEntry flag, check that it happened)
ACTIONS = {
    "retry_job": (
        "tempotask_job_retry",
        ["default", "broken-1"],
        {},
        "retry_job",
        CHANGE,
        lambda: _status("broken-1") == "waiting",
    ),
    "delete_job": (
        "tempotask_job_delete",
        ["default", "done-1"],
        {},
        "delete_job",
        DELETION,
        lambda: _status("done-1") is None,
    ),
    "cancel_job": (
        "tempotask_job_cancel",
        ["default", "later-1"],
        {},
        "cancel_job",
        CHANGE,
        lambda: _status("later-1") == "cancelled",
    ),
    "cancel_jobs": (
        "tempotask_jobs_cancel",
        ["default"],
        {"ids": ["xss-1", "later-1"]},
        "cancel_job",
        CHANGE,
        lambda: _status("xss-1") == _status("later-1") == "cancelled",
    ),
    "retry_failed": (
        "tempotask_queue_retry_failed",
        ["default"],
        {},
        "retry_job",
        CHANGE,
        lambda: get_default_store().inspect.count_jobs("default", "failed") == 0,
    ),
    "pause": ("tempotask_queue_pause", ["default"], {}, "pause_queue", CHANGE, _paused),
    "resume": ("tempotask_queue_resume", ["default"], {}, "pause_queue", CHANGE, lambda: not _paused()),
    "purge": (
        "tempotask_queue_purge",
        ["default", "completed"],
        {},
        "purge_queue",
        DELETION,
        lambda: get_default_store().inspect.count_jobs("default", "completed") == 0,
    ),
    "enqueue": (
        "tempotask_enqueue",
        [],
        {"task": "add", "json_data": '{"a": 1, "b": 2}', "job_id": "from-admin"},
        "enqueue_job",
        ADDITION,
        lambda: _status("from-admin") == "waiting",
    ),
    "run_cron": (
        "tempotask_cron_run",
        ["hourly_sweep"],
        {},
        "run_cron",
        ADDITION,
        lambda: _cron("hourly_sweep").runs == 1 and _status(_cron("hourly_sweep").last_job_id) == "waiting",
    ),
    "pause_cron": (
        "tempotask_cron_pause",
        ["hourly_sweep"],
        {},
        "pause_cron",
        CHANGE,
        lambda: _cron("hourly_sweep").paused,
    ),
    "resume_cron": (
        "tempotask_cron_resume",
        ["nightly_digest"],
        {},
        "pause_cron",
        CHANGE,
        lambda: not _cron("nightly_digest").paused,
    ),
}


def action_url(name: str) -> str:
    url_name, args, *_ = ACTIONS[name]
    return reverse(f"admin:{url_name}", args=args)


@pytest.fixture
def prepared(seeded):
    get_default_store().pause_queue("slow")  # something for every action to change, "resume" included
    get_default_store().pause_queue("default")
    CronBeat().sync()  # the test app's schedules: hourly_sweep and nightly_digest
    pause_cron("nightly_digest")
    return seeded


@pytest.mark.parametrize("name", list(ACTIONS))
def test_action_allowed(prepared, superuser, name):
    _, _, data, _, flag, happened = ACTIONS[name]
    if name == "pause":
        get_default_store().resume_queue("default")
    assert not happened()
    response = client_for(superuser).post(action_url(name), data)
    assert response.status_code == 302, response.content
    assert happened()
    entries = LogEntry.objects.all()
    assert len(entries) == len(data.get("ids", [None]))  # a bulk action logs each job
    for entry in entries:
        assert entry.user == superuser and entry.action_flag == flag
        assert entry.content_type.app_label == "tempotask_django"
    assert [m.level_tag for m in get_messages(response.wsgi_request)] == ["success"]


@pytest.mark.parametrize("name", list(ACTIONS))
def test_action_denied_without_its_permission(prepared, django_user_model, redis_client, name):
    permission = ACTIONS[name][3]
    others = [codename for codename in PERMISSIONS if codename != permission]
    user = grant(django_user_model.objects.create_user("almost", password="pw", is_staff=True), *others)
    before = redis_state(redis_client)
    assert client_for(user).post(action_url(name), ACTIONS[name][2]).status_code == 403
    assert redis_state(redis_client) == before and not LogEntry.objects.exists()


@pytest.mark.parametrize("name", list(ACTIONS))
def test_action_denied_to_view_only_staff_and_outsiders(prepared, viewer, outsider, redis_client, name):
    before = redis_state(redis_client)
    assert client_for(viewer).post(action_url(name), ACTIONS[name][2]).status_code == 403
    response = client_for(outsider).post(action_url(name), ACTIONS[name][2])
    assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))
    assert Client().post(action_url(name), ACTIONS[name][2]).status_code == 302
    assert redis_state(redis_client) == before and not LogEntry.objects.exists()


@pytest.mark.parametrize("name", ["retry_job", "pause", "resume", "run_cron", "pause_cron", "resume_cron"])
def test_get_never_acts(prepared, superuser, redis_client, name):
    before = redis_state(redis_client)
    assert client_for(superuser).get(action_url(name)).status_code == 405
    assert redis_state(redis_client) == before and not LogEntry.objects.exists()


@pytest.mark.parametrize("name", list(ACTIONS))
def test_post_without_csrf_token_is_refused(prepared, superuser, redis_client, name):
    client = Client(enforce_csrf_checks=True)
    client.force_login(superuser)
    before = redis_state(redis_client)
    assert client.post(action_url(name), ACTIONS[name][2]).status_code == 403
    assert redis_state(redis_client) == before and not LogEntry.objects.exists()


def test_post_with_the_csrf_token_of_the_page_works(prepared, superuser):
    client = Client(enforce_csrf_checks=True)
    client.force_login(superuser)
    page = client.get(reverse("admin:tempotask_job", args=["default", "broken-1"]))
    token = page.context["csrf_token"]
    assert client.post(action_url("retry_job"), {"csrfmiddlewaretoken": str(token)}).status_code == 302
    assert _status("broken-1") == "waiting"


def test_retrying_a_job_that_is_not_failed_changes_nothing(prepared, superuser, redis_client):
    before = redis_state(redis_client)
    url = reverse("admin:tempotask_job_retry", args=["default", "xss-1"])
    response = client_for(superuser).post(url, follow=True)
    assert "only failed, cancelled or delayed jobs can be retried" in response.content.decode()
    assert redis_state(redis_client) == before


def test_next_only_redirects_within_the_site(prepared, superuser):
    client = client_for(superuser)
    url = action_url("resume")
    assert client.post(url, {"next": "https://elsewhere.example/"})["Location"] == reverse("admin:tempotask_overview")
    target = reverse("admin:tempotask_job_list", args=["default", "failed"])
    assert client.post(url, {"next": target})["Location"] == target


def test_a_paused_queue_gives_workers_nothing(prepared, superuser):
    client_for(superuser).post(action_url("pause"))
    claimed = get_default_store().claim("default", "w1", 10)
    assert claimed.paused and claimed.jobs == []


def enqueue(client, **fields):
    return client.post(reverse("admin:tempotask_enqueue"), {"task": "add", "json_data": "{}", **fields})


@pytest.mark.parametrize(
    ("fields", "field", "error"),
    [
        ({"json_data": "{'a': 1}"}, "json_data", "This is not valid JSON: Expecting property name enclosed in double"),
        ({"json_data": ""}, "json_data", "This field is required."),
        ({"task": "no_such_task"}, "task", "Select a valid choice."),
        ({"priority": "5000"}, "priority", "priority must be an integer from -1000 to 1000"),
        ({"queue": "bad queue"}, "queue", "is not a valid queue name"),
        ({"job_id": "has space"}, "job_id", "must be 1-200 characters"),
        ({"delay": "-1"}, "delay", "delay must be a number of seconds from 0"),
        ({"attempts": "0"}, "attempts", "attempts must be an integer from 1 to 1000"),
        ({"json_data": json.dumps({"blob": "x" * 2_000_000})}, "json_data", "more than MAX_PAYLOAD_BYTES"),
    ],
)
def test_enqueue_form_errors_say_what_is_wrong(superuser, store, fields, field, error):
    response = enqueue(client_for(superuser), **fields)
    assert response.status_code == 400
    assert error in " ".join(response.context["form"].errors[field])
    assert error.split(":")[0] in html.unescape(response.content.decode())
    assert store.inspect.known_queues() == [] and not LogEntry.objects.exists()


def test_enqueue_with_options_and_a_duplicate_id(superuser, store):
    client = client_for(superuser)
    response = enqueue(client, json_data='{"a": 2, "b": 3}', queue="emails", priority="10", job_id="mine", attempts="3")
    assert response["Location"] == reverse("admin:tempotask_job", args=["emails", "mine"])
    job = store.inspect.get_job("emails", "mine")
    assert (job.data, job.priority, job.max_attempts, job.status) == ({"a": 2, "b": 3}, 10, 3, "waiting")
    delayed = enqueue(client, delay="60", job_id="later")
    assert delayed.status_code == 302 and status_of(store, "default", "later") == "delayed"
    again = enqueue(client, json_data='{"a": 9}', queue="emails", job_id="mine")
    messages = [str(m) for m in get_messages(again.wsgi_request)]
    assert messages[-1] == "A job with id mine is already waiting; nothing was added."
    assert store.inspect.get_job("emails", "mine").data == {"a": 2, "b": 3}
    assert LogEntry.objects.count() == 2


def test_confirmation_pages_change_nothing_and_name_the_count(prepared, superuser, redis_client):
    client = client_for(superuser)
    before = redis_state(redis_client)
    purge = client.get(action_url("purge")).content.decode()
    assert "Delete the 3 completed job(s) of default" in purge
    assert "Queue the 1 failed job(s) of default again" in client.get(action_url("retry_failed")).content.decode()
    assert "Delete job <strong>done-1</strong>" in client.get(action_url("delete_job")).content.decode()
    assert redis_state(redis_client) == before


def test_purge_refuses_an_active_status(prepared, superuser):
    url = reverse("admin:tempotask_queue_purge", args=["default", "waiting"])
    assert client_for(superuser).post(url).status_code == 404


def test_actions_on_an_unknown_queue_are_404(prepared, superuser, redis_client):
    before = redis_state(redis_client)
    assert client_for(superuser).post(reverse("admin:tempotask_queue_pause", args=["ghost"])).status_code == 404
    assert redis_state(redis_client) == before


def test_the_admin_log_links_to_the_job_and_the_queue(prepared, superuser):
    client = client_for(superuser)
    client.post(action_url("retry_job"))
    client.post(action_url("resume"))
    job_entry, queue_entry = LogEntry.objects.order_by("pk")
    assert client.get(job_entry.get_admin_url())["Location"] == reverse(
        "admin:tempotask_job", args=["default", "broken-1"]
    )
    assert client.get(queue_entry.get_admin_url())["Location"] == action_url("purge").replace(
        "purge/completed", "waiting"
    )
    assert job_entry.get_admin_url() in client.get(reverse("admin:index")).content.decode()  # "Recent actions"


def test_the_job_page_offers_cancel_for_active_jobs_only(prepared, superuser):
    client = client_for(superuser)
    waiting = client.get(reverse("admin:tempotask_job", args=["default", "xss-1"])).content.decode()
    done = client.get(reverse("admin:tempotask_job", args=["default", "done-1"])).content.decode()
    assert 'id="cancel-job"' in waiting and 'id="cancel-job"' not in done


def test_the_job_list_offers_the_bulk_cancel_to_those_who_may(prepared, superuser, viewer):
    url = reverse("admin:tempotask_job_list", args=["default", "waiting"])
    assert 'id="cancel-selected"' in client_for(superuser).get(url).content.decode()
    assert 'id="cancel-selected"' not in client_for(viewer).get(url).content.decode()
    completed = reverse("admin:tempotask_job_list", args=["default", "completed"])
    assert 'id="cancel-selected"' not in client_for(superuser).get(completed).content.decode()


def test_a_cancelled_job_is_listed_and_can_be_retried(prepared, superuser):
    client = client_for(superuser)
    client.post(action_url("cancel_job"))
    page = client.get(reverse("admin:tempotask_job_list", args=["default", "cancelled"])).content.decode()
    assert "later-1" in page and "Cancelled (1)" in page
    assert 'id="retry-job"' in client.get(reverse("admin:tempotask_job", args=["default", "later-1"])).content.decode()
    client.post(reverse("admin:tempotask_job_retry", args=["default", "later-1"]))
    assert _status("later-1") == "waiting"


def test_cancelling_a_finished_job_changes_nothing(prepared, superuser, redis_client):
    before = redis_state(redis_client)
    response = client_for(superuser).post(reverse("admin:tempotask_job_cancel", args=["default", "done-1"]))
    assert response.status_code == 302
    assert [m.level_tag for m in get_messages(response.wsgi_request)] == ["warning"]
    assert redis_state(redis_client) == before and not LogEntry.objects.exists()
