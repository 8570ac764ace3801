"""Fixtures of the ``manage.py tempotask`` tests: running the command, users, live processes."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
from django.core.management import call_command

from tempotask_django.cron import CronBeat
from tempotask_django.storage.connection import get_default_store
from tests.admin.conftest import grant
from tests.conftest import ROOT, _test_url

# Every queue the test project configures (DEFAULT_QUEUE and the queues its tasks name).
CONFIGURED = ("crons", "default", "slow")


def tempotask(*args: str) -> str:
    """``manage.py tempotask ARGS`` in this process; its output (CommandError and SystemExit propagate)."""
    out = io.StringIO()
    call_command("tempotask", *args, stdout=out)
    return out.getvalue().strip()


def tempotask_process(*args: str, redis_url: str | None = None) -> subprocess.CompletedProcess[str]:
    """``manage.py tempotask ARGS`` as its own process: exit code and output as an operator sees them."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(ROOT),
        "TEMPOTASK_TEST_REDIS_URL": redis_url or _test_url(),
    }
    return subprocess.run(
        [sys.executable, "-m", "django", "tempotask", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def announce_worker(*queues: str, name: str = "host:4242:ops") -> None:
    """A worker's heartbeat, published the way a running Worker publishes it."""
    get_default_store().register_worker(name, {"queues": ",".join(queues), "concurrency": 1, "prefetch": 8}, ttl=30)


def announce_beat() -> None:
    """Register the test app's schedules and publish a beat's heartbeat, as ``runcron`` does."""
    beat = CronBeat()
    beat.sync()
    beat.heartbeat(get_default_store().server_time_ms())


@pytest.fixture
def operator(django_user_model, db):
    """Staff with every permission ``manage.py tempotask`` checks."""
    user = django_user_model.objects.create_user("operator", password="pw", is_staff=True)
    return grant(
        user,
        "view_dashboard",
        "retry_job",
        "delete_job",
        "cancel_job",
        "enqueue_job",
        "pause_queue",
        "purge_queue",
        "run_cron",
        "pause_cron",
    )


@pytest.fixture
def viewer(django_user_model, db):
    """Staff who may only look."""
    return grant(django_user_model.objects.create_user("viewer", password="pw", is_staff=True), "view_dashboard")
