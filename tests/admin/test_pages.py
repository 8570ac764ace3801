"""Every dashboard page for a superuser, a view-only staff user, a non-staff user and an anonymous visitor."""

from __future__ import annotations

import importlib
import json
from types import SimpleNamespace

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.urls import reverse
from django.utils.html import escape

from tempotask_django import api
from tempotask_django.job import ms_to_datetime
from tempotask_django.models import PERMISSIONS
from tempotask_django.storage.connection import get_default_store
from tests.admin.conftest import XSS, admin_url, client_for, redis_state
from tests.helpers import drain, is_paused, url_with_password

pytestmark = pytest.mark.django_db
STATUSES = ("waiting", "processing", "delayed", "completed", "failed")


def page_urls(ids: dict) -> dict[str, str]:
    """Read-only pages (GET never changes anything) -> URL."""

    url = admin_url
    return {
        "overview": url("tempotask_overview"),
        "overview_json": url("tempotask_overview_data"),
        "workers": url("tempotask_workers"),
        **{f"list_{status}": url("tempotask_job_list", "default", status) for status in STATUSES},
        "list_by_task": url("tempotask_job_list", "default", "completed") + "?task=add",
        "list_search": url("tempotask_job_list", "default", "waiting") + f"?q={ids['failed']}",
        "job_failed": url("tempotask_job", "default", ids["failed"]),
        "job_parent": url("tempotask_job", "default", ids["parent"]),
        "job_child": url("tempotask_job", "default", ids["child"]),
        "job_waiting": url("tempotask_job", "default", ids["waiting"]),
    }


# Pages behind an action permission (confirmation pages and the enqueue form).
def action_pages(ids: dict) -> dict[str, str]:
    return {
        "enqueue_form": reverse("admin:tempotask_enqueue"),
        "confirm_delete": reverse("admin:tempotask_job_delete", args=["default", ids["failed"]]),
        "confirm_retry_failed": reverse("admin:tempotask_queue_retry_failed", args=["default"]),
        "confirm_purge": reverse("admin:tempotask_queue_purge", args=["default", "completed"]),
    }


def test_superuser_sees_every_page(seeded, superuser, redis_client):
    client = client_for(superuser)
    before = redis_state(redis_client)
    for name, url in {**page_urls(seeded), **action_pages(seeded)}.items():
        response = client.get(url)
        assert response.status_code == 200, name
        if name != "overview_json":
            assert "admin/base_site.html" in [t.name for t in response.templates], name
            assert b'class="breadcrumbs"' in response.content, name
    assert redis_state(redis_client) == before, "a GET changed Redis"


def test_view_only_staff_sees_pages_but_no_action(seeded, viewer):
    client = client_for(viewer)
    for name, url in page_urls(seeded).items():
        assert client.get(url).status_code == 200, name
    for name, url in action_pages(seeded).items():
        assert client.get(url).status_code == 403, name
    detail = client.get(page_urls(seeded)["job_failed"]).content.decode()
    overview = client.get(page_urls(seeded)["overview"]).content.decode()
    failed_list = client.get(page_urls(seeded)["list_failed"]).content.decode()
    for html in (detail, overview, failed_list):
        assert '<form method="post"' not in html  # not a single action form (the admin's logout form aside)
    assert "Retry now" not in detail and "Delete" not in detail
    assert "Enqueue a job" not in overview and "Retry all failed" not in failed_list


def test_superuser_sees_the_buttons(seeded, superuser):
    client = client_for(superuser)
    detail = client.get(page_urls(seeded)["job_failed"]).content.decode()
    assert 'id="retry-job"' in detail and 'id="delete-job"' in detail
    assert "Retry all failed" in client.get(page_urls(seeded)["list_failed"]).content.decode()
    overview = client.get(page_urls(seeded)["overview"]).content.decode()
    assert "Enqueue a job" in overview and ">Pause</button>" in overview


@pytest.mark.parametrize("who", ["outsider", "anonymous"])
def test_non_staff_and_anonymous_are_sent_to_the_login_page(seeded, who, request):
    client = client_for(request.getfixturevalue(who) if who != "anonymous" else None)
    for name, url in {**page_urls(seeded), **action_pages(seeded)}.items():
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login")), name


def test_staff_without_view_permission_gets_403(seeded, django_user_model):
    client = client_for(django_user_model.objects.create_user("staff", password="pw", is_staff=True))
    for name, url in page_urls(seeded).items():
        assert client.get(url).status_code == 403, name
    assert b"Tempotask" not in client.get(reverse("admin:index")).content


def test_permissions_work_through_groups(seeded, django_user_model):
    group = Group.objects.create(name="operators")
    group.permissions.add(*Permission.objects.filter(codename__in=["view_dashboard", "pause_queue"]))
    user = django_user_model.objects.create_user("op", password="pw", is_staff=True)
    user.groups.add(group)
    client = client_for(user)
    assert client.get(reverse("admin:tempotask_overview")).status_code == 200
    assert client.post(reverse("admin:tempotask_queue_pause", args=["default"])).status_code == 302
    assert is_paused(get_default_store(), "default")
    assert client.post(reverse("admin:tempotask_job_retry", args=["default", seeded["failed"]])).status_code == 403


def test_admin_index_lists_the_dashboard(viewer, db):
    html = client_for(viewer).get(reverse("admin:index")).content.decode()
    assert "Tempotask" in html and reverse("admin:tempotask_overview") in html


def test_overview_shows_queues_totals_workers_chart_and_problems(seeded, superuser):
    response = client_for(superuser).get(reverse("admin:tempotask_overview"))
    html = response.content.decode()
    stats = {s.queue: s for s in response.context["queues"]}
    assert stats["default"].completed == 3 and stats["default"].failed == 1 and stats["default"].waiting == 1
    assert stats["slow"].waiting == 1
    assert response.context["totals"]["waiting"] == 2 and response.context["totals"]["delayed"] == 1
    assert "<svg" in html and "1 failed" in html  # the chart and its caption
    assert "no live worker serves it" in html  # nothing is running in this test
    assert "No live worker" in html
    assert '<meta http-equiv="refresh"' in html  # refreshes itself without JavaScript
    assert "dashboard.js" in html


def test_overview_json_has_numbers_and_fragments(seeded, superuser):
    data = client_for(superuser).get(reverse("admin:tempotask_overview_data")).json()
    default = next(q for q in data["queues"] if q["queue"] == "default")
    assert default["failed"] == 1 and default["oldest_job_age"] is not None
    assert data["chart"]["failed"] == 1 and data["workers"] == 0
    assert set(data["html"]) == {"attention", "queues", "chart", "workers", "beats"}
    assert data["beats"] == 0 and data["crons"] == 0
    assert "<table" in data["html"]["queues"]


def test_job_list_columns_filters_and_search(seeded, superuser):
    client = client_for(superuser)
    response = client.get(reverse("admin:tempotask_job_list", args=["default", "completed"]))
    assert response.context["jobs"][0].id == seeded["child"]  # newest first
    html = response.content.decode()
    for column in ("Id", "Task", "Status", "Attempt", "Priority", "Enqueued", "Started", "Finished", "Duration"):
        assert f">{column}</th>" in html
    by_task = client.get(reverse("admin:tempotask_job_list", args=["default", "completed"]), {"task": "record"})
    assert [job.name for job in by_task.context["jobs"]] == ["record"]
    search = client.get(reverse("admin:tempotask_job_list", args=["default", "waiting"]), {"q": seeded["failed"]})
    assert [job.id for job in search.context["jobs"]] == [seeded["failed"]]
    missing = client.get(reverse("admin:tempotask_job_list", args=["default", "waiting"]), {"q": "nope"})
    assert missing.context["jobs"] == [] and "No waiting jobs" in missing.content.decode()


def test_search_by_id_lists_the_job_of_every_queue_holding_it(seeded, superuser):
    api.add_job("add", {"a": 0, "b": 0}, job_id=seeded["failed"], queue="slow", on_commit=False)
    search = client_for(superuser).get(
        reverse("admin:tempotask_job_list", args=["slow", "waiting"]), {"q": seeded["failed"]}
    )
    assert [(job.queue, job.id) for job in search.context["jobs"]] == [
        ("default", seeded["failed"]),
        ("slow", seeded["failed"]),
    ]
    html = search.content.decode()
    for queue in ("default", "slow"):
        assert reverse("admin:tempotask_job", args=[queue, seeded["failed"]]) in html


def test_jobs_tab_opens_the_default_queue(superuser, db):
    response = client_for(superuser).get(reverse("admin:tempotask_jobs"), {"q": "abc"})
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:tempotask_job_list", args=["default", "waiting"]) + "?q=abc"


def test_job_list_pages(store, superuser, db):
    api.add_jobs([{"name": "noop", "data": n, "job_id": f"n{n:03}"} for n in range(120)], on_commit=False)
    client = client_for(superuser)
    url = reverse("admin:tempotask_job_list", args=["default", "waiting"])
    first, last = client.get(url), client.get(url, {"p": 3})
    assert len(first.context["jobs"]) == 50 and first.context["jobs"][0].id == "n119"
    assert [job.id for job in last.context["jobs"]][-1] == "n000" and len(last.context["jobs"]) == 20
    assert client.get(url, {"p": "junk"}).status_code == 200


def test_job_detail_shows_everything_an_operator_needs(seeded, superuser):
    client = client_for(superuser)
    response = client.get(reverse("admin:tempotask_job", args=["default", seeded["failed"]]))
    html = response.content.decode()
    assert "ValueError" in html and "Traceback (most recent call last)" in html
    assert "this task always fails" in html
    assert [e["kind"] for e in response.context["timeline"]] == ["enqueued", "failed", "started", "failed", "failed"]
    assert "&quot;why&quot;: &quot;test&quot;" in html  # data, as indented JSON
    parent = client.get(reverse("admin:tempotask_job", args=["default", seeded["parent"]]))
    assert [job.id for job in parent.context["children"]] == [seeded["child"]]
    assert "spawned children" in parent.content.decode()  # a log line
    assert reverse("admin:tempotask_job", args=["default", seeded["child"]]) in parent.content.decode()
    child = client.get(reverse("admin:tempotask_job", args=["default", seeded["child"]])).content.decode()
    assert reverse("admin:tempotask_job", args=["default", seeded["parent"]]) in child


def test_job_data_is_escaped(seeded, superuser):
    html = client_for(superuser).get(reverse("admin:tempotask_job", args=["default", seeded["waiting"]])).content
    assert XSS.encode() not in html and b"&lt;script&gt;alert(" in html


def section(html: str, start: str, end: str) -> str:
    """The part of ``html`` from the first ``start`` to the next ``end`` (fails the test when missing)."""
    assert start in html, start
    return html.split(start, 1)[1].split(end, 1)[0]


def test_result_logs_error_and_traceback_are_escaped(store, superuser, db):
    done = api.add_job("echoes", {"text": XSS}, job_id="echo-ok", on_commit=False)
    failed = api.add_job("echoes", {"text": XSS, "fail": True}, job_id="echo-fail", on_commit=False)
    drain(["default"])
    escaped = escape(XSS)
    client = client_for(superuser)
    ok_page = client.get(reverse("admin:tempotask_job", args=["default", done])).content.decode()
    failed_page = client.get(reverse("admin:tempotask_job", args=["default", failed])).content.decode()
    assert XSS not in ok_page and XSS not in failed_page
    assert escaped in section(ok_page, 'id="job-result">', "</pre>")
    logs = section(ok_page, 'class="tt-table tt-logs"', "</table>")
    assert logs.count(escaped) == 2  # the line given as text and the one given as a dict
    error = section(failed_page, '<details class="tt-error"', "</details>")
    assert escaped in section(error, "<summary>", "</summary>")  # the error message
    traceback = section(error, '<pre class="tt-traceback">', "</pre>")
    assert "Traceback (most recent call last)" in traceback and f"ValueError: {escaped}" in traceback
    lists = [
        client.get(reverse("admin:tempotask_job_list", args=["default", status])).content.decode()
        for status in ("completed", "failed")
    ]
    overview = client.get(reverse("admin:tempotask_overview")).content.decode()
    fragments = json.dumps(client.get(reverse("admin:tempotask_overview_data")).json())
    for html in (*lists, overview, fragments):
        assert XSS not in html
    completed_list, failed_list = lists
    assert done in completed_list and failed not in completed_list  # each job listed under its own status
    assert failed in failed_list and done not in failed_list


def test_job_detail_shows_the_worker_that_ran_it_and_when_each_line_was_logged(seeded, superuser, store):
    parent = store.inspect.get_job("default", seeded["parent"])
    assert parent.worker and len(parent.logs) == 2
    url = reverse("admin:tempotask_job", args=["default", seeded["parent"]])
    client = client_for(superuser)
    html = client.get(url).content.decode()
    assert f'<th scope="row">Worker</th><td>{parent.worker} <span class="quiet">(no longer alive)</span>' in html
    texts = ["spawned children", escape(json.dumps(parent.logs[1]["message"]))]  # a line given as text, as a dict
    for line, text in zip(parent.logs, texts, strict=True):
        stamp = ms_to_datetime(line["t"]).strftime("%Y-%m-%d %H:%M:%S")
        assert f'<tr><td class="tt-when">{stamp}</td><td><pre>{text}</pre></td></tr>' in html
    store.register_worker(parent.worker, {"host": "h", "pid": 1, "queues": "default"}, ttl=30)
    alive = client.get(url).content.decode()
    workers_link = reverse("admin:tempotask_workers")
    assert f'<th scope="row">Worker</th><td>{parent.worker} <a href="{workers_link}">(alive)</a>' in alive
    failed = client.get(reverse("admin:tempotask_job", args=["default", seeded["failed"]])).content.decode()
    assert failed.count(f"Attempt 2 on {parent.worker}: ") == 1  # each attempt's error names its worker


def test_purge_is_offered_to_a_superuser_only(seeded, superuser, viewer):
    for status in ("completed", "failed"):
        url = reverse("admin:tempotask_job_list", args=["default", status])
        purge = reverse("admin:tempotask_queue_purge", args=["default", status])
        assert f'href="{purge}"' in client_for(superuser).get(url).content.decode(), status
        seen_by_viewer = client_for(viewer).get(url).content.decode()
        assert f'href="{purge}"' not in seen_by_viewer and "Purge" not in seen_by_viewer, status


def test_unknown_job_and_queue_are_404(seeded, superuser):
    client = client_for(superuser)
    assert client.get(reverse("admin:tempotask_job", args=["default", "nope"])).status_code == 404
    assert client.get(reverse("admin:tempotask_job_list", args=["ghost", "waiting"])).status_code == 404


def test_workers_page_lists_live_workers_only(store, superuser, db):
    store.register_worker(
        "web1:42:abc",
        {
            "host": "web1",
            "pid": 42,
            "queues": "default,slow",
            "concurrency": 4,
            "started": store.server_time_ms(),
            "jobs_done": 7,
            "running": 2,
        },
        ttl=30,
    )
    store.register_worker("dead:1:x", {"host": "dead", "pid": 1, "queues": "default"}, ttl=30)
    store.client.delete(store.global_keys.worker("dead:1:x"))  # what an expired heartbeat leaves
    response = client_for(superuser).get(reverse("admin:tempotask_workers"))
    assert [w["id"] for w in response.context["workers"]] == ["web1:42:abc"]
    html = response.content.decode()
    for text in ("web1", ">42<", "default", "slow", ">4<", ">7<", ">2<"):
        assert text in html


@pytest.mark.parametrize("form", ["userinfo", "userinfo with @", "query"])
def test_the_redis_password_is_masked(seeded, superuser, settings, form):
    url = url_with_password(settings.TEMPOTASK["REDIS_URL"], form, "s3cret-pw")
    with override_settings(TEMPOTASK={**settings.TEMPOTASK, "REDIS_URL": url}):
        client = client_for(superuser)
        for name, page in page_urls(seeded).items():
            response = client.get(page)
            assert response.status_code == 200, name
            assert b"s3cret-pw" not in response.content, name
        shown = b"password=***" if form == "query" else b"default:***@"
        assert shown in client.get(reverse("admin:tempotask_overview")).content


def test_permissions_have_a_migration():
    call_command("makemigrations", "tempotask_django", "--check", "--dry-run", verbosity=0)


def test_every_permission_exists_with_its_description(db):
    stored = dict(Permission.objects.filter(content_type__app_label="tempotask_django").values_list("codename", "name"))
    assert stored == PERMISSIONS


def test_the_migration_renames_run_cron_of_an_older_database(db):
    Permission.objects.filter(codename="run_cron").update(name="Can run cron schedules now and pause them")
    migration = importlib.import_module("tempotask_django.migrations.0002_cron_permissions")
    migration.rename_run_cron(django_apps, SimpleNamespace(connection=connection))
    assert Permission.objects.get(codename="run_cron").name == "Can run cron schedules now"


def test_a_record_without_its_queue_field_does_not_break_the_pages_that_list_it(seeded, superuser, store):
    """The link to each job was built from the record's own queue field: NoReverseMatch for the page."""
    keys = store.keys("default")
    store.client.hdel(keys.job(seeded["waiting"]), "queue")
    store.client.hdel(keys.job(seeded["child"]), "queue")
    client = client_for(superuser)
    listing = client.get(admin_url("tempotask_job_list", "default", "waiting"))
    assert listing.status_code == 200
    assert admin_url("tempotask_job", "default", seeded["waiting"]) in listing.content.decode()
    parent = client.get(admin_url("tempotask_job", "default", "parent-1"))
    assert parent.status_code == 200
    assert admin_url("tempotask_job", "default", seeded["child"]) in parent.content.decode()
    assert client.get(admin_url("tempotask_job", "default", seeded["child"])).status_code == 200
