"""The health view (``tempotask_django.urls``): the command's checks as JSON, 200, 503 or 400."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from tempotask_django import api
from tests.helpers import on_one_server
from tests.ops.conftest import CONFIGURED, announce_beat, announce_worker

pytestmark = [pytest.mark.redis, pytest.mark.django_db]


def probe(query: str = "", method: str = "get"):
    return getattr(Client(), method)(f"{reverse('tempotask:health')}{query}")


def test_the_url_is_mounted_by_the_apps_urlconf():
    assert reverse("tempotask:health") == "/tempotask/health/"


def test_healthy_answers_200_with_every_check(store):
    announce_worker(*CONFIGURED)
    announce_beat()
    response = probe()
    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"]
    body = response.json()
    assert body["status"] == "ok"
    assert body["summary"].startswith("OK: Redis reachable; 1 live worker(s) serve crons, default, slow")
    assert body["queues"] == list(CONFIGURED)
    assert body["checks"] == {
        "redis": {"ok": True, "skipped": False, "detail": "Redis reachable"},
        "workers": {"ok": True, "skipped": False, "detail": "1 live worker(s) serve crons, default, slow"},
        "beat": {"ok": True, "skipped": False, "detail": "1 live cron beat(s) for 2 schedule(s)"},
        "backlog": {"ok": True, "skipped": True, "detail": "no backlog limits given"},
    }


def test_a_failing_check_answers_503_with_the_reason(store):
    announce_beat()
    response = probe()
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "fail"
    assert body["summary"] == "FAIL: no live worker serves queue(s) crons, default, slow"
    assert body["checks"]["workers"]["ok"] is False and body["checks"]["beat"]["ok"] is True


def test_query_parameters_choose_the_queues_limits_and_skipped_checks(store):
    announce_worker("default")
    for n in range(3):
        api.add_job("add", {"a": n, "b": n}, on_commit=False)
    assert probe("?queue=default&skip=beat").status_code == 200
    assert probe("?queue=default,slow&skip=beat").status_code == 503
    over = probe("?queue=default&skip=beat&max_waiting=2")
    assert over.status_code == 503
    assert over.json()["summary"] == "FAIL: 3 job(s) wait in default (limit 2)"
    assert probe("?queue=default&skip=beat&max_waiting=3&max_age=600").status_code == 200
    only_redis = probe("?skip=workers&skip=beat,backlog")
    assert (only_redis.status_code, only_redis.json()["summary"]) == (200, "OK: Redis reachable")


def test_head_answers_the_same_code(store):
    assert probe(method="head").status_code == 503
    announce_worker(*CONFIGURED)
    announce_beat()
    assert probe(method="head").status_code == 200


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("?max_waiting=lots", "max_waiting must be a whole number, not 'lots'"),
        ("?max_age=-5", "max_age must be 0 or more, not '-5'"),
        ("?max_age=1&max_age=2", "give max_age once"),
        ("?skip=redis", "cannot skip redis: only workers, beat, backlog can be skipped"),
        ("?queue=a%20b", "queue 'a b' is not a valid queue name (letters, digits, '_', '.', '-'; 1-100)"),
        ("?max_wait=3", "unknown parameter(s) max_wait; known: queue, max_waiting, max_age, skip"),
    ],
)
def test_a_query_it_does_not_understand_answers_400(store, query, error):
    response = probe(query)
    assert response.status_code == 400
    assert response.json() == {"status": "error", "error": error}


def test_redis_unreachable_answers_503(settings, store):
    settings.TEMPOTASK = on_one_server(settings.TEMPOTASK, "redis://127.0.0.1:1/0")
    response = probe()
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["redis"]["ok"] is False
    assert checks["redis"]["detail"].startswith("Redis is unreachable at redis://127.0.0.1:1/0: ")
    assert all(checks[name]["skipped"] for name in ("workers", "beat", "backlog"))


def test_post_is_not_allowed(store):
    assert Client().post(reverse("tempotask:health")).status_code == 405
