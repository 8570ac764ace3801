"""The Prometheus endpoint, scraped as Prometheus would and parsed with prometheus_client's parser."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core import checks
from django.test import Client
from django.urls import reverse
from prometheus_client.parser import text_string_to_metric_families

from tempotask_django import api
from tempotask_django.models import VIEW
from tempotask_django.ops import metrics as ops_metrics
from tempotask_django.storage.records import JobSpec
from tempotask_django.views import metrics as metrics_view
from tests.admin.conftest import grant
from tests.helpers import drain, on_one_server
from tests.ops.conftest import announce_beat, announce_worker

pytestmark = [pytest.mark.redis, pytest.mark.django_db]

TOKEN = "s3cret-token-for-prometheus"


@pytest.fixture
def with_token(settings):
    settings.TEMPOTASK = {**settings.TEMPOTASK, "METRICS_TOKEN": TOKEN}


def scrape(client: Client | None = None, token: str | None = TOKEN):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return (client or Client()).get(reverse("tempotask:metrics"), **headers)


def samples(response) -> dict[tuple[str, frozenset], float]:
    """Every sample of the exposition: (name, labels) -> value."""
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    found = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found, name: str, **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


def test_counts_counters_durations_workers_and_beats(store, with_token, settings):
    settings.TEMPOTASK = {**settings.TEMPOTASK, "MAX_JOBS_PER_STATUS": 2}
    for n in range(5):
        api.add_job("add", {"a": n, "b": 1}, on_commit=False)
    api.add_job("always_fails", {"why": "metrics"}, on_commit=False)  # two attempts: a retry, then failed
    drain(["default"])
    api.add_job("add", {"a": 0, "b": 0}, on_commit=False)  # waiting
    announce_worker("default", "slow")
    announce_beat()
    found = samples(scrape())

    assert value(found, "tempotask_jobs", queue="default", status="completed") == 2  # trimmed to 2
    assert value(found, "tempotask_jobs", queue="default", status="failed") == 1
    assert value(found, "tempotask_jobs", queue="default", status="waiting") == 1
    assert value(found, "tempotask_queue_paused", queue="default") == 0
    assert value(found, "tempotask_oldest_waiting_seconds", queue="default") < 60
    # Counters count every job since the first, whatever history keeps.
    assert value(found, "tempotask_jobs_completed_total", queue="default", task="add") == 5
    assert value(found, "tempotask_jobs_failed_total", queue="default", task="always_fails") == 1
    assert value(found, "tempotask_jobs_retried_total", queue="default", task="always_fails") == 1
    # Every attempt is in the duration histogram: cumulative buckets, +Inf equals the count.
    assert value(found, "tempotask_job_duration_seconds_count", queue="default", task="add") == 5
    assert value(found, "tempotask_job_duration_seconds_count", queue="default", task="always_fails") == 2
    assert value(found, "tempotask_job_duration_seconds_bucket", queue="default", task="add", le="+Inf") == 5
    buckets = sorted(
        (float(dict(labels)["le"]), count)
        for (name, labels), count in found.items()
        if name == "tempotask_job_duration_seconds_bucket" and dict(labels)["task"] == "add"
    )
    assert len(buckets) == len(ops_metrics.DURATION_BOUNDS) + 1  # every bucket, observed or not
    assert [count for _, count in buckets] == sorted(count for _, count in buckets)  # cumulative
    assert 0 <= value(found, "tempotask_job_duration_seconds_sum", queue="default", task="add") < 5
    assert value(found, "tempotask_workers") == 1
    assert value(found, "tempotask_queue_workers", queue="default") == 1
    assert value(found, "tempotask_queue_workers", queue="slow") == 1
    assert value(found, "tempotask_beats") == 1
    assert 0 <= value(found, "tempotask_beat_heartbeat_age_seconds") < 30


def test_no_beat_no_heartbeat_age(store, with_token):
    found = samples(scrape())
    assert value(found, "tempotask_beats") == 0
    assert not [key for key in found if key[0] == "tempotask_beat_heartbeat_age_seconds"]


def test_only_the_token_or_a_staff_viewer_may_scrape(store, with_token, django_user_model):
    assert scrape(token=None).status_code == 403
    assert scrape(token="s3cret-token-for-prometheuS").status_code == 403
    staff = django_user_model.objects.create_user("ops", password="pw", is_staff=True)
    browser = Client()
    browser.force_login(staff)
    assert scrape(browser, token=None).status_code == 403  # staff without the dashboard permission
    browser.force_login(grant(staff, VIEW))
    samples(scrape(browser, token=None))


def test_without_a_token_setting_a_bearer_header_is_not_enough(store):
    assert scrape(token="anything-at-all-long-enough").status_code == 403


def test_redis_unreachable_is_a_503(store, with_token, settings):
    settings.TEMPOTASK = on_one_server(settings.TEMPOTASK, "redis://127.0.0.1:1/0")
    response = scrape()
    assert response.status_code == 503
    assert b"Redis is not reachable" in response.content


def test_a_short_token_is_refused_by_the_settings_check(settings):
    settings.TEMPOTASK = {**settings.TEMPOTASK, "METRICS_TOKEN": "short"}
    messages = [message.msg for message in checks.run_checks()]
    assert any("METRICS_TOKEN" in message for message in messages)


def test_without_the_extra_the_view_says_what_to_install(store, with_token, monkeypatch):
    monkeypatch.setattr(metrics_view, "metrics", None)
    response = scrape()
    assert response.status_code == 501
    assert b"pip install 'tempotask-django[prometheus]'" in response.content


def test_the_histograms_bounds_are_the_ones_the_scripts_count_in():
    lib = (Path(ops_metrics.__file__).parent.parent / "storage" / "lua" / "lib.lua").read_text()
    [bounds] = re.findall(r"local DURATION_BOUNDS_MS = \{([^}]*)\}", lib)
    assert tuple(int(ms) / 1000 for ms in bounds.split(",")) == ops_metrics.DURATION_BOUNDS


def test_a_job_of_a_task_no_worker_knows_adds_no_per_task_counter(store):
    """A foreign program's made-up task names would each add fields to the queue's metrics hash."""
    for n in range(3):
        store.enqueue(JobSpec(id=f"foreign-{n}", name=f"made_up_task_{n}", queue="default", data="{}"))
    api.add_job("add", {"a": 1, "b": 1}, on_commit=False)
    drain(["default"])
    assert api.get_job("foreign-0").status == "failed"
    counters = store.inspect.metric_counters(["default"])["default"]
    assert not [field for field in counters if "made_up_task" in field]
    assert counters["completed:add"] == 1
