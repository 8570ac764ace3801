"""The admin shows each limit with the jobs waiting on it, and a job's progress, live."""

from __future__ import annotations

import pytest

from tempotask_django import api
from tempotask_django.job import JobStatus
from tests.admin.conftest import admin_url, client_for

pytestmark = [pytest.mark.django_db, pytest.mark.redis]


def test_the_queue_page_lists_each_limit_and_the_jobs_waiting_on_it(store, superuser):
    for n in range(4):
        api.add_job("capped", {"n": n}, on_commit=False)
    for n in range(3):
        api.add_job("one_per_tenant", {"tenant": "acme", "n": n}, on_commit=False)
    claimed = store.claim("slow", "w1", 100).jobs
    assert sorted(job["name"] for job in claimed) == ["capped", "capped", "one_per_tenant"]
    page = client_for(superuser).get(admin_url("tempotask_job_list", "slow", "waiting"))
    assert page.status_code == 200
    limits = page.context["limits"]
    rows = {row["task"]: row for row in limits["rows"]}
    assert rows["capped"]["max_concurrency"] == 2 and rows["capped"]["running"] == 2
    assert rows["capped"]["waiting"] == 2
    assert rows["one_per_tenant"]["waiting"] == 2 and rows["one_per_tenant"]["keys_waiting"] == 1
    assert rows["rated"]["rate_limit"] == "10/s" and rows["rated"]["waiting"] == 0
    html = page.content.decode()
    assert 'id="queue-limits"' in html and "task capped" in html and "acme 2" in html


def test_a_queue_rate_limit_is_shown(store, superuser, settings):
    settings.TEMPOTASK = {**settings.TEMPOTASK, "QUEUES": {"default": {"RATE_LIMIT": "5/m"}}}
    page = client_for(superuser).get(admin_url("tempotask_job_list", "default", "waiting"))
    assert page.context["limits"]["queue_rate"] == "5/m"
    assert "queue default" in page.content.decode()


def test_a_running_job_shows_its_progress_and_its_page_polls_it(store, superuser):
    api.add_job("add", {"a": 1, "b": 1}, job_id="prog-1", on_commit=False)
    (fields,) = store.claim("default", "w1", 1).jobs
    assert store.set_progress("default", "prog-1", fields["entry"], '{"percent": 42, "info": {"rows": 7}}')
    client = client_for(superuser)
    page = client.get(admin_url("tempotask_job", "default", "prog-1"))
    html = page.content.decode()
    assert '<progress max="100" value="42">' in html and "{&quot;rows&quot;:7}" in html
    assert admin_url("tempotask_job_live", "default", "prog-1") in html  # polled while active
    live = client.get(admin_url("tempotask_job_live", "default", "prog-1")).json()
    assert live["status"] == JobStatus.PROCESSING and live["progress"]["percent"] == 42
    assert 'value="42"' in live["html"]["progress"]
    listing = client.get(admin_url("tempotask_job_list", "default", "processing")).content.decode()
    assert '<progress max="100" value="42">' in listing
    assert '<meta http-equiv="refresh" content="5">' in listing  # the running jobs' list stays live


def test_the_live_view_needs_the_view_permission(store, outsider):
    api.add_job("add", {"a": 1, "b": 1}, job_id="prog-2", on_commit=False)
    response = client_for(outsider).get(admin_url("tempotask_job_live", "default", "prog-2"))
    assert response.status_code in (302, 403)
