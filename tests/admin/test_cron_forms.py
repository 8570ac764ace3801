"""Runtime cron schedules in the admin: create, change, delete; permissions; the admin log."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.urls import reverse

from tempotask_django import add_cron, list_crons
from tempotask_django.cron import CronBeat
from tempotask_django.storage.crons import CronStore
from tests.admin.conftest import client_for, grant

pytestmark = pytest.mark.django_db

FORM = {
    "name": "report-acme",
    "task": "record",
    "cron": "0 4 * * *",
    "timezone": "Europe/Paris",
    "json_data": '{"customer": "acme"}',
    "queue": "",
    "attempts": "3",
    "priority": "",
    "overlap": "skip",
}


def url(name: str, *args: str) -> str:
    return reverse(f"admin:{name}", args=args)


def crons() -> dict:
    return {cron.name: cron for cron in list_crons()}


def test_create_change_and_delete_a_schedule_with_before_and_after_in_the_log(superuser, store):
    client = client_for(superuser)
    assert client.get(url("tempotask_cron_add")).status_code == 200
    response = client.post(url("tempotask_cron_add"), FORM)
    assert response.status_code == 302
    acme = crons()["report-acme"]
    assert (acme.source, acme.expression, acme.data, acme.attempts, acme.overlap) == (
        "runtime",
        "0 4 * * *",
        {"customer": "acme"},
        3,
        "skip",
    )
    page = client.get(url("tempotask_crons")).content.decode()
    assert url("tempotask_cron_change", "report-acme") in page and "runtime (admin/API)" in page

    edit = client.get(url("tempotask_cron_change", "report-acme"))
    assert edit.status_code == 200 and 'value="0 4 * * *"' in edit.content.decode()
    response = client.post(url("tempotask_cron_change", "report-acme"), {**FORM, "cron": "0 5 * * *"})
    assert response.status_code == 302
    assert crons()["report-acme"].expression == "0 5 * * *" and crons()["report-acme"].version == 2

    assert client.get(url("tempotask_cron_delete", "report-acme")).status_code == 200  # confirm, nothing done
    assert "report-acme" in crons()
    assert client.post(url("tempotask_cron_delete", "report-acme")).status_code == 302
    assert "report-acme" not in crons()

    log = LogEntry.objects.filter(object_id="cron:report-acme").order_by("action_time")
    assert [entry.action_flag for entry in log] == [ADDITION, CHANGE, DELETION]
    assert 'cron="0 4 * * *"' in log[0].change_message
    assert log[1].change_message == 'Changed: cron: "0 4 * * *" -> "0 5 * * *".'
    assert 'cron="0 5 * * *"' in log[2].change_message


def test_an_invalid_schedule_shows_the_error_on_the_form_and_writes_nothing(superuser, store):
    client = client_for(superuser)
    for field, value, message in (
        ("cron", "every day", "not a valid cron expression"),
        ("timezone", "Mars/Olympus", "Mars/Olympus"),
        ("json_data", "{nope", "not valid JSON"),
        ("name", "hourly_sweep", "defined in the code"),
    ):
        response = client.post(url("tempotask_cron_add"), {**FORM, field: value})
        assert response.status_code == 400 and message in response.content.decode(), field
    assert list_crons() == [] and not LogEntry.objects.exists()


def test_code_schedules_stay_read_only(superuser, store):
    CronBeat().sync()
    client = client_for(superuser)
    assert client.get(url("tempotask_cron_change", "hourly_sweep")).status_code == 404
    assert client.get(url("tempotask_cron_delete", "hourly_sweep")).status_code == 404
    assert client.post(url("tempotask_cron_delete", "hourly_sweep")).status_code == 302
    assert "hourly_sweep" in crons()
    page = client.get(url("tempotask_crons")).content.decode()
    assert url("tempotask_cron_change", "hourly_sweep") not in page


def test_each_action_needs_its_own_permission(django_user_model, store):
    add_cron("rt", "record", "0 4 * * *")
    user = grant(django_user_model.objects.create_user("ops", password="pw", is_staff=True), "view_dashboard")
    client = client_for(user)
    assert client.get(url("tempotask_cron_add")).status_code == 403
    assert client.post(url("tempotask_cron_change", "rt"), {**FORM, "name": "rt"}).status_code == 403
    assert client.post(url("tempotask_cron_delete", "rt")).status_code == 403
    assert "Add a cron schedule" not in client.get(url("tempotask_crons")).content.decode()
    client = client_for(grant(user, "change_cron"))
    assert client.post(url("tempotask_cron_change", "rt"), {**FORM, "name": "rt"}).status_code == 302
    assert client.post(url("tempotask_cron_delete", "rt")).status_code == 403
    assert crons()["rt"].expression == "0 4 * * *" and crons()["rt"].version == 2
    client = client_for(grant(user, "delete_cron"))
    assert client.post(url("tempotask_cron_delete", "rt")).status_code == 302 and "rt" not in crons()


def test_the_edit_page_shows_the_history(superuser, store):
    add_cron("rt", "record", "0 4 * * *")
    client = client_for(superuser)
    client.post(url("tempotask_cron_change", "rt"), {**FORM, "name": "rt", "cron": "0 6 * * *"})
    page = client.get(url("tempotask_cron_change", "rt")).content.decode()
    assert "created" in page and "changed" in page and "0 6 * * *" in page
    assert [event.event for event in CronStore(store).history("rt")] == ["changed", "created"]
