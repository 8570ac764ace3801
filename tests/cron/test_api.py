"""Managing schedules from any process: list, pause, resume, run now; and the live beats. Real Redis."""

from __future__ import annotations

import datetime
import os
import socket
import zoneinfo

import pytest

from tempotask_django import JobStatus, get_job, list_beats, list_crons, pause_cron, resume_cron, run_cron_now
from tempotask_django.cron import CronBeat
from tempotask_django.exceptions import CronNotFound
from tests.cron.support import only_schedules
from tests.helpers import drain

pytestmark = pytest.mark.redis

EVERY_5 = {"task": "record", "cron": "*/5 * * * *", "data": {"n": 1}, "attempts": 3, "priority": 4}


def test_public_pause_resume_and_run_now(redis_client):
    cron_beat = CronBeat(only_schedules(every5=EVERY_5))
    cron_beat.sync()
    pause_cron("every5")
    assert list_crons()[0].paused
    job_id = run_cron_now("every5")  # works while paused
    job = get_job(job_id)
    assert (job.name, job.data, job.max_attempts, job.priority, job.origin) == ("record", {"n": 1}, 3, 4, "cron:every5")
    resume_cron("every5")
    info = list_crons()[0]
    assert not info.paused and info.last_job_id == job_id and info.last_job_status == JobStatus.WAITING
    assert info.last_run is None  # a run now is not a tick
    drain()
    assert list_crons()[0].last_job_status == JobStatus.COMPLETED
    for action in (pause_cron, resume_cron, run_cron_now):
        with pytest.raises(CronNotFound, match="nope"):
            action("nope")


def test_list_crons_has_what_the_admin_shows(redis_client):
    CronBeat().sync()  # the test app's own schedules: nightly_digest and hourly_sweep
    nightly = {c.name: c for c in list_crons()}["nightly_digest"]
    assert (nightly.task, nightly.expression, nightly.timezone) == ("nightly_digest", "0 3 * * *", "Europe/Paris")
    assert (nightly.description, nightly.queue, nightly.data) == ("Every day at 03:00", "crons", {"kind": "digest"})
    assert nightly.paused is False and nightly.attempts == 2 and nightly.priority == 5
    paris_3am = nightly.next_run.astimezone(zoneinfo.ZoneInfo("Europe/Paris"))
    assert (paris_3am.hour, paris_3am.minute) == (3, 0)
    assert paris_3am - datetime.datetime.now(datetime.UTC) < datetime.timedelta(days=1)
    assert nightly.last_run is None and nightly.last_job_id is None and nightly.last_job_status is None


def test_a_heartbeat_publishes_what_the_admin_shows(store, settings):
    cron_beat = CronBeat(only_schedules(hourly={"task": "noop", "cron": "0 * * * *"}), kind="runcron")
    now_ms = store.server_time_ms()
    cron_beat.heartbeat(now_ms)
    [info] = list_beats()
    assert info.id == cron_beat.name and info.host == socket.gethostname() and info.pid == os.getpid()
    assert (info.kind, info.schedules) == ("runcron", 1)
    assert int(info.last_tick.timestamp() * 1000) == now_ms == int(info.heartbeat.timestamp() * 1000)
    assert info.started == info.last_tick
    ttl_ms = store.client.pttl(store.global_keys.beat(cron_beat.name))
    assert 29_000 < ttl_ms <= 30_000  # three heartbeats of CRON_BEAT_HEARTBEAT (10 s by default)
    cron_beat.heartbeat(now_ms + 10_000)
    [later] = list_beats()
    assert later.started == info.started and later.last_tick > info.last_tick
