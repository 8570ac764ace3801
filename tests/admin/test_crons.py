"""The cron schedules page, the beats on the overview and workers pages, and Django tasks in the admin."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.messages import get_messages
from django.urls import reverse

from tempotask_django import list_crons, pause_cron, run_cron_now
from tempotask_django.cron import CronBeat
from tempotask_django.storage.connection import get_default_store
from tempotask_django.storage.crons import CronStore
from tests.admin.conftest import XSS, client_for, grant, redis_state
from tests.helpers import drain
from tests.testapp import dtasks

pytestmark = pytest.mark.django_db
# A schedule written by someone else's code: every field is markup, and the name holds a "/".
FOREIGN = f"{XSS}/odd"


def crons_url() -> str:
    return reverse("admin:tempotask_crons")


@pytest.fixture
def schedules(store, db):
    """The test app's schedules (hourly_sweep on default, nightly_digest on crons, paused)."""
    CronBeat().sync()
    pause_cron("nightly_digest")
    return {cron.name: cron for cron in list_crons()}


@pytest.fixture
def foreign(schedules, store):
    definition = {
        "name": FOREIGN,
        "task": XSS,
        "expression": XSS,
        "timezone": XSS,
        "description": XSS,
        "queue": "default",
        "data": "null",
        "attempts": "",
        "priority": "",
        "source": "settings",
    }
    CronStore(store).register(FOREIGN, "default", definition, next_run_ms=store.server_time_ms() + 60_000)
    return FOREIGN


def beat_alive(store, name: str = "web-1:77:abc123", schedules: int = 2) -> None:
    now = store.server_time_ms()
    info = {
        "host": "web-1",
        "pid": 77,
        "kind": "runcron",
        "started": now - 5000,
        "last_tick": now,
        "schedules": schedules,
    }
    CronStore(store).publish_beat(name, info, ttl=30, now_ms=now)


def test_the_page_shows_every_schedule(schedules, superuser, redis_client):
    client = client_for(superuser)
    before = redis_state(redis_client)
    response = client.get(crons_url())
    assert redis_state(redis_client) == before, "a GET changed Redis"
    assert response.status_code == 200
    assert "admin/base_site.html" in [t.name for t in response.templates]
    html = response.content.decode()
    assert 'class="breadcrumbs"' in html and "&rsaquo; Cron schedules" in html
    assert 'aria-current="page">Cron schedules</a>' in html  # its tab, after Workers
    assert html.index(">Workers</a>") < html.index(">Cron schedules</a>")
    rows = {row["cron"].name: row for row in response.context["crons"]}
    assert list(rows) == ["hourly_sweep", "nightly_digest"]
    for text in (
        "Every hour",
        '<code class="tt-expression">@hourly</code>',
        "0 3 * * *",
        "Europe/Paris",
        "hourly_sweep",
        "nightly_digest",
        "never",
        ">Paused</span>",
        ">Active</span>",
    ):
        assert text in html, text
    assert reverse("admin:tempotask_job_list", args=["crons", "waiting"]) in html
    assert rows["hourly_sweep"]["next_in"] is not None and not rows["hourly_sweep"]["late"]
    assert "No cron beat is running: 2 cron schedule(s) will not fire." in html


def test_the_last_run_links_to_its_job_and_shows_its_status(schedules, superuser):
    job_id = run_cron_now("hourly_sweep")
    drain(["default"])
    html = client_for(superuser).get(crons_url()).content.decode()
    link = reverse("admin:tempotask_job", args=["default", job_id])
    assert f'<a href="{link}" title="job {job_id}" class="tt-badge tt-completed">completed</a>' in html
    get_default_store().delete_job("default", job_id)  # trimmed from the history meanwhile
    assert "job no longer kept" in client_for(superuser).get(crons_url()).content.decode()


def test_buttons_follow_the_permissions(schedules, superuser, viewer, django_user_model):
    def page(user) -> str:
        return client_for(user).get(crons_url()).content.decode()

    everything = page(superuser)
    assert everything.count(">Run now</button>") == 2 and ">Pause</button>" in everything
    assert ">Resume</button>" in everything
    seen = page(viewer)
    assert '<form method="post"' not in seen and "Run now</button>" not in seen and "Actions</th>" not in seen
    runner = grant(
        django_user_model.objects.create_user("runner", password="pw", is_staff=True), "view_dashboard", "run_cron"
    )
    assert ">Run now</button>" in page(runner) and ">Pause</button>" not in page(runner)
    pauser = grant(
        django_user_model.objects.create_user("pauser", password="pw", is_staff=True), "view_dashboard", "pause_cron"
    )
    assert ">Run now</button>" not in page(pauser) and ">Resume</button>" in page(pauser)


@pytest.mark.parametrize("who", ["outsider", "anonymous"])
def test_non_staff_and_anonymous_are_sent_to_the_login_page(schedules, who, request):
    client = client_for(request.getfixturevalue(who) if who != "anonymous" else None)
    response = client.get(crons_url())
    assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))


def test_staff_without_view_permission_gets_403(schedules, django_user_model, redis_client):
    user = grant(django_user_model.objects.create_user("staff", password="pw", is_staff=True), "run_cron", "pause_cron")
    client = client_for(user)
    before = redis_state(redis_client)
    assert client.get(crons_url()).status_code == 403
    assert client.post(reverse("admin:tempotask_cron_run", args=["hourly_sweep"])).status_code == 403
    assert redis_state(redis_client) == before and not LogEntry.objects.exists()


def test_schedule_data_is_escaped_and_odd_names_work(foreign, superuser):
    client = client_for(superuser)
    html = client.get(crons_url()).content.decode()
    assert XSS not in html and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;/odd" in html
    response = client.post(reverse("admin:tempotask_cron_pause", args=[foreign]))
    assert response.status_code == 302 and response["Location"] == crons_url()
    assert next(cron for cron in list_crons() if cron.name == foreign).paused
    assert LogEntry.objects.get().object_repr == f"cron schedule {foreign}"
    followed = client.get(crons_url()).content.decode()
    assert XSS not in followed  # the success message names it, escaped


def test_run_now_of_a_task_this_process_does_not_know_says_so(foreign, superuser, redis_client):
    before = redis_state(redis_client)
    response = client_for(superuser).post(reverse("admin:tempotask_cron_run", args=[foreign]))
    assert response.status_code == 302
    [message] = [str(m) for m in get_messages(response.wsgi_request)]
    assert message.startswith(f"Cron schedule {foreign} could not run:") and "No task named" in message
    assert redis_state(redis_client) == before and not LogEntry.objects.exists()


@pytest.mark.parametrize("action", ["tempotask_cron_run", "tempotask_cron_pause", "tempotask_cron_resume"])
def test_an_unknown_schedule_changes_nothing(schedules, superuser, redis_client, action):
    before = redis_state(redis_client)
    response = client_for(superuser).post(reverse(f"admin:{action}", args=["ghost"]))
    assert response.status_code == 302
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "There is no cron schedule named ghost (a beat registers them when it starts)."
    ]
    assert redis_state(redis_client) == before and not LogEntry.objects.exists()


def test_run_now_is_logged_against_its_job_and_pause_against_the_schedule(schedules, superuser):
    client = client_for(superuser)
    client.post(reverse("admin:tempotask_cron_run", args=["nightly_digest"]))  # paused: run now still works
    client.post(reverse("admin:tempotask_cron_resume", args=["nightly_digest"]))
    ran, resumed = LogEntry.objects.order_by("pk")
    job_id = next(cron for cron in list_crons() if cron.name == "nightly_digest").last_job_id
    assert ran.change_message == "Ran cron schedule nightly_digest now." and ran.object_id == f"crons/{job_id}"
    assert client.get(ran.get_admin_url())["Location"] == reverse("admin:tempotask_job", args=["crons", job_id])
    assert resumed.object_id == "cron:nightly_digest" and client.get(resumed.get_admin_url())["Location"] == crons_url()


def test_the_next_field_brings_the_operator_back(schedules, superuser):
    overview = reverse("admin:tempotask_overview")
    response = client_for(superuser).post(
        reverse("admin:tempotask_cron_pause", args=["hourly_sweep"]), {"next": overview}
    )
    assert response["Location"] == overview


# -- beats -----------------------------------------------------------------------------------------------


def test_overview_warns_when_schedules_exist_and_no_beat_is_alive(schedules, superuser):
    client = client_for(superuser)
    html = client.get(reverse("admin:tempotask_overview")).content.decode()
    assert "No cron beat is running: 2 cron schedule(s) will not fire." in html
    assert f'<a href="{crons_url()}">Show</a>' in html
    data = client.get(reverse("admin:tempotask_overview_data")).json()
    assert data["beats"] == 0 and data["crons"] == 2
    assert data["attention"][0].startswith("No cron beat is running")


def test_no_warning_without_schedules(superuser, store):
    html = client_for(superuser).get(reverse("admin:tempotask_overview")).content.decode()
    assert "No cron beat is running (and no schedule is registered)." in html
    assert "will not fire" not in html


def test_live_beats_show_on_the_overview_workers_and_cron_pages(schedules, superuser, store):
    beat_alive(store)
    client = client_for(superuser)
    overview = client.get(reverse("admin:tempotask_overview"))
    assert "will not fire" not in overview.content.decode()
    assert [row["beat"].host for row in overview.context["beats"]] == ["web-1"]
    assert "web-1:77" in overview.content.decode()
    workers = client.get(reverse("admin:tempotask_workers")).content.decode()
    for text in ("web-1:77:abc123", ">77<", "runcron", ">2</a>", "Live cron beats (1)"):
        assert text in workers, text
    assert "Live cron beats (1)" in client.get(crons_url()).content.decode()
    assert client.get(reverse("admin:tempotask_overview_data")).json()["beats"] == 1


def test_a_beat_whose_heartbeat_expired_is_gone(schedules, superuser, store):
    beat_alive(store)
    store.client.delete(store.global_keys.beat("web-1:77:abc123"))  # what an expired heartbeat leaves
    html = client_for(superuser).get(reverse("admin:tempotask_workers")).content.decode()
    assert "Live cron beats (0)" in html and "No cron beat is running" in html


def test_a_schedule_far_behind_its_next_run_is_reported(schedules, superuser, store):
    beat_alive(store)
    assert CronStore(store).queue_of("hourly_sweep") == "default"  # the hash written below is the schedule's
    key = store.keys("default").cron("hourly_sweep")
    store.client.hset(key, "next_run", store.server_time_ms() - 600_000)  # due 10 minutes ago, never fired
    store.client.hset(store.keys("crons").cron("nightly_digest"), "next_run", store.server_time_ms() - 600_000)
    client = client_for(superuser)
    html = client.get(reverse("admin:tempotask_overview")).content.decode()
    assert "Cron schedule hourly_sweep was due 10 min ago and has not fired" in html
    assert "nightly_digest was due" not in html  # paused: not expected to fire
    page = client.get(crons_url())
    assert [row["late"] for row in page.context["crons"]] == [True, False]
    assert "10 min ago" in page.content.decode()


# -- Django tasks ----------------------------------------------------------------------------------------


def test_django_task_jobs_show_their_own_task(superuser, store):
    result = dtasks.calculate_meaning_of_life.enqueue()
    client = client_for(superuser)
    listing = client.get(reverse("admin:tempotask_job_list", args=["default", "waiting"])).content.decode()
    label = "tests.testapp.dtasks.calculate_meaning_of_life (Django task)"
    assert label in listing
    detail = client.get(reverse("admin:tempotask_job", args=["default", result.id])).content.decode()
    assert label in detail and "(run by tempotask.django_task)" in detail
    assert "Enqueue another" not in detail


def test_the_enqueue_form_does_not_offer_internal_tasks(superuser, store):
    client = client_for(superuser)
    choices = [
        value for value, _ in client.get(reverse("admin:tempotask_enqueue")).context["form"].fields["task"].choices
    ]
    assert "add" in choices and not [name for name in choices if name.startswith("tempotask.")]
    response = client.post(reverse("admin:tempotask_enqueue"), {"task": "tempotask.django_task", "json_data": "{}"})
    assert response.status_code == 400 and "Select a valid choice" in response.content.decode()
    assert store.inspect.known_queues() == []
