"""``manage.py tempotask health``: exit 0 with "OK: ..." or 1 with "FAIL: <reason>", on one line."""

from __future__ import annotations

import io
import threading
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tempotask_django import api
from tempotask_django.cron import CronBeat
from tempotask_django.ops import backend
from tempotask_django.storage.connection import get_default_store
from tempotask_django.worker import Worker
from tests.helpers import on_one_server, wait_until
from tests.ops.conftest import CONFIGURED, announce_beat, announce_worker, tempotask, tempotask_process

pytestmark = [pytest.mark.redis, pytest.mark.django_db]

NO_BEAT = "no cron beat is alive and 2 cron schedule(s) exist (start manage.py runcron or runworkers --with-cron)"


def failure(*args: str) -> str:
    """The line ``health ARGS`` prints when it exits with status 1."""
    out = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("tempotask", "health", *args, stdout=out)
    assert exited.value.code == 1
    return out.getvalue().strip()


@pytest.fixture
def healthy(store):
    """A worker serving every configured queue and a beat, both through their real heartbeats."""
    announce_worker(*CONFIGURED)
    announce_beat()
    return store


def test_healthy(healthy):
    assert tempotask("health") == (
        "OK: Redis reachable; 1 live worker(s) serve crons, default, slow; 1 live cron beat(s) for 2 schedule(s)"
    )


def test_healthy_with_a_real_worker_running_in_a_thread(store):
    worker = Worker(list(CONFIGURED))
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: get_default_store().inspect.list_workers(), message="the worker's first heartbeat")
        assert tempotask("health", "--skip", "beat").startswith("OK: Redis reachable; 1 live worker(s) serve")
    finally:
        worker.request_stop()
        thread.join(timeout=15)
    assert not thread.is_alive()


def test_no_worker_and_no_beat(store):
    assert failure() == f"FAIL: no live worker serves queue(s) crons, default, slow; {NO_BEAT}"


def test_only_the_given_queues_need_a_worker(store):
    announce_worker("default")
    announce_beat()
    assert tempotask("health", "--queue", "default").startswith("OK: Redis reachable; 1 live worker(s) serve default")
    assert failure("--queue", "default", "--queue", "slow") == ("FAIL: no live worker serves queue(s) slow")
    assert failure() == "FAIL: no live worker serves queue(s) crons, slow"


def test_a_beat_is_needed_when_schedules_exist(store):
    announce_worker(*CONFIGURED)
    assert failure() == f"FAIL: {NO_BEAT}"
    assert tempotask("health", "--skip", "beat") == "OK: Redis reachable; 1 live worker(s) serve crons, default, slow"


def test_no_schedules_need_no_beat(store, monkeypatch):
    monkeypatch.setattr(backend, "collect_schedules", list)  # a project that defines none
    announce_worker(*CONFIGURED)
    assert tempotask("health").endswith("; no cron schedules, no beat needed")


def test_a_schedule_registered_in_redis_needs_a_beat_too(store, monkeypatch):
    """One a beat of another release registered, which this code no longer defines."""
    CronBeat().sync()  # registered by a beat that has stopped since
    monkeypatch.setattr(backend, "collect_schedules", list)
    announce_worker(*CONFIGURED)
    assert failure() == f"FAIL: {NO_BEAT}"


def test_backlog_over_the_waiting_limit(healthy):
    for n in range(3):
        api.add_job("add", {"a": n, "b": n}, on_commit=False)
    assert failure("--max-waiting", "2") == "FAIL: 3 job(s) wait in default (limit 2)"
    assert tempotask("health", "--max-waiting", "3").endswith("; backlog within limits (3 waiting)")


def test_backlog_older_than_the_age_limit(healthy):
    api.add_job("add", {"a": 1, "b": 1}, on_commit=False)
    time.sleep(1.2)
    assert failure("--max-age", "1") == ("FAIL: the oldest waiting job in default has waited 1 s (limit 1 s)")
    assert tempotask("health", "--max-age", "60", "--max-waiting", "10").endswith(
        "; backlog within limits (10 waiting, 60 s old)"
    )


def test_every_reason_is_on_the_one_line(store):
    for n in range(2):
        api.add_job("add", {"a": n, "b": n}, on_commit=False)
    line = failure("--max-waiting", "1")
    assert line == (
        f"FAIL: no live worker serves queue(s) crons, default, slow; {NO_BEAT}; 2 job(s) wait in default (limit 1)"
    )


def test_skipping_everything_but_redis(store):
    assert tempotask("health", "--skip", "workers,beat", "--skip", "backlog", "--max-waiting", "0") == (
        "OK: Redis reachable"
    )


def test_redis_unreachable(settings, store):
    settings.TEMPOTASK = on_one_server(settings.TEMPOTASK, "redis://127.0.0.1:1/0")
    line = failure()
    assert line.startswith("FAIL: Redis is unreachable at redis://127.0.0.1:1/0: ")
    assert "\n" not in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--max-waiting", "many"), r"^max_waiting must be a whole number, not 'many'$"),
        (("--max-waiting", "-1"), r"^max_waiting must be 0 or more, not '-1'$"),
        (("--max-age", "nan"), r"^max_age must be 0 or more, not 'nan'$"),
        (("--queue", "a b"), r"^queue 'a b' is not a valid queue name"),
        (("--skip", "redis"), r"^cannot skip redis: only workers, beat, backlog can be skipped$"),
    ],
)
def test_bad_options_are_refused(store, args, message):
    with pytest.raises(CommandError, match=message):
        tempotask("health", *args)


# -- as an operator or a probe runs it: a process and its exit code -----------------------------------
@pytest.mark.slow
def test_the_process_exits_0_when_healthy_and_1_with_the_reason(store):
    ok = tempotask_process("health", "--skip", "workers", "--skip", "beat")
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "OK: Redis reachable\n", "")
    failed = tempotask_process("health", "--skip", "beat")
    assert (failed.returncode, failed.stdout) == (1, "FAIL: no live worker serves queue(s) crons, default, slow\n")
    down = tempotask_process("health", redis_url="redis://127.0.0.1:1/0")
    assert down.returncode == 1
    assert down.stdout.startswith("FAIL: Redis is unreachable at redis://127.0.0.1:1/0: ")
    assert down.stdout.count("\n") == 1


@pytest.mark.slow
def test_an_operators_mistake_exits_1_with_one_line(store):
    result = tempotask_process("pause", "nope")
    assert result.returncode == 1
    assert result.stderr == "CommandError: no queue named 'nope'; known queues: crons, default, slow\n"
