"""``manage.py tempotask stats [--json]``: the overview's numbers in a terminal or for a script."""

from __future__ import annotations

import json

import pytest
from django.core.management.base import CommandError

from tempotask_django import api, list_beats
from tests.helpers import drain, on_one_server
from tests.ops.conftest import announce_beat, announce_worker, tempotask

pytestmark = [pytest.mark.redis, pytest.mark.django_db]


@pytest.fixture
def busy(store):
    """default: 1 completed, 1 failed, 2 waiting; slow: 1 delayed and paused; a worker, a beat."""
    api.add_job("add", {"a": 1, "b": 2}, on_commit=False)
    api.add_job("always_fails", {"why": "test"}, on_commit=False)
    drain(["default"])
    api.add_job("add", {"a": 1, "b": 1}, on_commit=False)
    api.add_job("add", {"a": 2, "b": 2}, on_commit=False)
    api.add_job("slow", {"seconds": 0}, delay=600, on_commit=False)
    store.pause_queue("slow")
    announce_worker("default", "slow")
    announce_beat()
    return store


def test_json_has_every_queue_the_totals_and_the_processes(busy):
    data = json.loads(tempotask("stats", "--json"))
    queues = {row["queue"]: row for row in data["queues"]}
    assert sorted(queues) == ["crons", "default", "slow"]
    counts = ("waiting", "delayed", "processing", "completed", "failed")
    assert {name: queues["default"][name] for name in counts} == {
        "waiting": 2,
        "delayed": 0,
        "processing": 0,
        "completed": 1,
        "failed": 1,
    }
    assert (queues["slow"]["delayed"], queues["slow"]["paused"], queues["slow"]["workers"]) == (1, True, 1)
    assert queues["crons"]["workers"] == 0
    assert 0 <= queues["default"]["oldest_job_age"] < 60  # enqueued by the fixture a moment ago
    totals = {"waiting": 2, "delayed": 1, "processing": 0, "completed": 1, "failed": 1, "cancelled": 0}
    assert data["totals"] == totals
    [worker] = data["workers"]
    assert (worker["id"], worker["queues"]) == ("host:4242:ops", ["default", "slow"])
    assert (worker["concurrency"], worker["prefetch"]) == (1, 8)
    assert 0 <= worker["heartbeat_age"] < 30
    [beat] = data["beats"]
    assert beat["schedules"] == 2 and 0 <= beat["heartbeat_age"] < 30
    assert data["crons"] == {"total": 2, "paused": 0}


def test_text_is_a_table_and_a_line_per_kind_of_process(busy):
    lines = tempotask("stats").splitlines()
    assert lines[0].split() == [
        "QUEUE",
        "WAITING",
        "DELAYED",
        "PROCESSING",
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "OLDEST",
        "WAITING",
        "WORKERS",
        "PAUSED",
    ]
    rows = {line.split()[0]: line.split() for line in lines[1:5]}
    assert rows["crons"] == ["crons", "0", "0", "0", "0", "0", "0", "-", "0", "no"]
    assert rows["default"][:7] == ["default", "2", "0", "0", "1", "1", "0"] and rows["default"][-2:] == ["1", "no"]
    assert rows["slow"] == ["slow", "0", "1", "0", "0", "0", "0", "-", "1", "yes"]
    assert rows["TOTAL"] == ["TOTAL", "2", "1", "0", "1", "1", "0", "-", "-", "-"]
    [beat] = list_beats()
    assert lines[6:] == [
        "Live workers (1): host:4242:ops (default,slow)",
        f"Live cron beats (1): {beat.id} (beat)",
        "Cron schedules: 2 (0 paused)",
    ]


def test_an_empty_setup(store):
    data = json.loads(tempotask("stats", "--json"))
    assert data["workers"] == [] and data["beats"] == [] and data["crons"] == {"total": 0, "paused": 0}
    assert "Live workers (0)" in tempotask("stats")


def test_a_user_needs_the_view_permission(busy, viewer, django_user_model):
    assert json.loads(tempotask("stats", "--json", "--user", "viewer"))["totals"]["waiting"] == 2
    django_user_model.objects.create_user("nobody", password="pw", is_staff=True)
    with pytest.raises(CommandError, match=r"tempotask_django\.view_dashboard$"):
        tempotask("stats", "--user", "nobody")


def test_redis_unreachable_is_one_line(settings, store):
    settings.TEMPOTASK = on_one_server(settings.TEMPOTASK, "redis://127.0.0.1:1/0")
    with pytest.raises(CommandError, match=r"^Redis is unreachable at redis://127\.0\.0\.1:1/0: .*$"):
        tempotask("stats")
