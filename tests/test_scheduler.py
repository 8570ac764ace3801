"""The beat one step at a time, with a controllable clock, on a real Redis."""

from __future__ import annotations

import datetime
import threading
import time
import zoneinfo

import pytest

from tempotask_django import (
    JobStatus,
    get_job,
    list_beats,
    list_crons,
    list_jobs,
    pause_cron,
    resume_cron,
    run_cron_now,
)
from tempotask_django.exceptions import CronNotFound
from tempotask_django.scheduler import MAX_SLEEP_MS, CronScheduler
from tempotask_django.schedules import collect_schedules
from tempotask_django.storage.crons import CronStore
from tests.helpers import drain, wait_until

pytestmark = pytest.mark.redis

# A fixed day for the fake clock: Monday 2030-01-07 10:00:00 UTC.
T0 = int(datetime.datetime(2030, 1, 7, 10, 0, tzinfo=datetime.UTC).timestamp())
MS = 1000


def schedules(**crons):
    """Only these schedules (not the test app's own @task(cron=...) ones)."""
    return [s for s in collect_schedules(raw={"CRONS": crons}) if s.name in crons]


def beat(**crons) -> CronScheduler:
    scheduler = CronScheduler(schedules(**crons))
    scheduler.sync(now_ms=T0 * MS)
    return scheduler


def cron_jobs(queue: str = "default") -> list[str]:
    ids = []
    for status in ("waiting", "processing", "completed", "failed"):
        ids += [job.id for job in list_jobs(queue, status, limit=1000)]
    return sorted(ids)


EVERY_5 = {"task": "record", "cron": "*/5 * * * *", "data": {"n": 1}, "attempts": 3, "priority": 4}


def test_a_due_tick_enqueues_its_job_once(redis_client):
    scheduler = beat(every5=EVERY_5)
    assert scheduler.tick(T0 * MS + 200).fired == []  # the 10:00 tick is not later than the start
    result = scheduler.tick((T0 + 300) * MS + 150)
    assert result.fired == ["every5"]
    assert scheduler.tick((T0 + 300) * MS + 400).outcomes == {}  # this beat knows it handled it
    other = beat(every5=EVERY_5)
    assert other.tick((T0 + 300) * MS + 500).outcomes["every5"].outcome == "done"  # decided by Redis
    job = get_job(f"cron:every5:{T0 + 300}")
    assert (job.name, job.data, job.queue, job.max_attempts, job.priority) == ("record", {"n": 1}, "default", 3, 4)
    assert job.origin == "cron:every5" and job.status == JobStatus.WAITING
    assert cron_jobs() == [f"cron:every5:{T0 + 300}"]


def test_the_beat_sleeps_until_the_next_tick(redis_client):
    scheduler = beat(
        every20s={"task": "record", "cron": "* * * * * */20"}, daily={"task": "record", "cron": "0 12 * * *"}
    )
    result = scheduler.tick((T0 + 5) * MS)
    assert result.next_due_ms == (T0 + 20) * MS and result.sleep_ms() == 15 * MS
    result = scheduler.tick((T0 + 20) * MS + 7)
    assert result.fired == ["every20s"] and result.sleep_ms() == 20 * MS - 7
    result = scheduler.tick((T0 + 3600) * MS + 10)  # 11:00 fires; the next tick of all is daily's, at 12:00
    assert result.fired == ["every20s"]
    scheduler.schedules = scheduler.schedules[:1]  # daily only: a tick an hour away
    scheduler._upcoming.pop("every20s")
    assert scheduler.tick((T0 + 3600) * MS + 20).sleep_ms() == MAX_SLEEP_MS  # look at the clock again later
    assert CronScheduler([]).tick(T0 * MS).sleep_ms() == MAX_SLEEP_MS  # no schedules: idle, never spin


def test_one_step_registers_fires_heartbeats_and_says_how_long_to_sleep(redis_client):
    scheduler = CronScheduler(schedules(every5=EVERY_5), clock=lambda: 0.0)  # the heartbeat clock stands still
    assert scheduler.step((T0 + 10) * MS) == 10 * MS  # registered; the next heartbeat comes before 10:05
    assert [c.name for c in list_crons()] == ["every5"] and [b.id for b in list_beats()] == [scheduler.name]
    scheduler._heartbeat_due = 1e9  # no heartbeat due: the wait is the tick's (capped: 10:10 is 5 min away)
    assert scheduler.step((T0 + 300) * MS + 25) == MAX_SLEEP_MS
    assert scheduler.step((T0 + 590) * MS) == 10 * MS
    assert cron_jobs() == [f"cron:every5:{T0 + 300}"]


def test_beats_racing_on_one_tick_enqueue_it_once(redis_client):
    beats = [beat(every5=EVERY_5) for _ in range(8)]
    results = []
    barrier = threading.Barrier(len(beats))

    def fire(scheduler):
        barrier.wait()
        results.append(scheduler.tick((T0 + 300) * MS + 5).outcomes["every5"].outcome)

    threads = [threading.Thread(target=fire, args=(b,)) for b in beats]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["done"] * 7 + ["fired"]
    assert cron_jobs() == [f"cron:every5:{T0 + 300}"]


def test_a_finished_tick_is_not_fired_again_although_its_job_id_is_free(redis_client):
    scheduler = beat(every5=EVERY_5)
    scheduler.tick((T0 + 300) * MS)
    drain()  # the job completes: enqueueing its id again would be accepted
    assert get_job(f"cron:every5:{T0 + 300}").status == JobStatus.COMPLETED
    late_beat = beat(every5=EVERY_5)
    assert late_beat.tick((T0 + 301) * MS).outcomes["every5"].outcome == "done"
    assert [c.runs for c in list_crons()] == [1]


def test_downtime_fires_only_the_most_recent_missed_tick(redis_client):
    scheduler = beat(every5=EVERY_5)
    scheduler.tick((T0 + 300) * MS)
    # No beat runs for 50 minutes (ten ticks); a beat starting then fires the 10:55 tick only.
    restarted = beat(every5=EVERY_5)
    result = restarted.tick((T0 + 3400) * MS)
    assert result.fired == ["every5"]
    assert cron_jobs() == [f"cron:every5:{T0 + 300}", f"cron:every5:{T0 + 3300}"]
    # The same beat falling behind while running behaves the same way.
    result = restarted.tick((T0 + 5000) * MS)
    assert result.fired == ["every5"] and cron_jobs()[-1] == f"cron:every5:{T0 + 4800}"
    assert len(cron_jobs()) == 3


def test_ticks_older_than_the_catchup_window_are_skipped(redis_client, settings):
    settings.TEMPOTASK = {**settings.TEMPOTASK, "CRON_CATCHUP_WINDOW": 600}
    daily = {"task": "record", "cron": "0 11 * * *"}
    beat(daily=daily).tick((T0 + 3600) * MS)  # 11:00 fires
    late = beat(daily=daily)
    result = late.tick((T0 + 86400 + 3600 + 601) * MS)  # the next 11:00 tick, 601 s late
    assert result.outcomes["daily"].outcome == "missed"
    assert cron_jobs() == [f"cron:daily:{T0 + 3600}"]
    within = beat(daily=daily)
    assert within.tick((T0 + 2 * 86400 + 3600 + 599) * MS).fired == ["daily"]  # 599 s late: fires
    [info] = list_crons()
    assert info.last_run == datetime.datetime.fromtimestamp(T0 + 2 * 86400 + 3600, datetime.UTC)


def test_a_new_schedule_does_not_fire_ticks_from_before_it_existed(redis_client):
    scheduler = beat(daily={"task": "record", "cron": "0 9 * * *"})  # registered at 10:00
    assert scheduler.tick((T0 + 60) * MS).outcomes["daily"].outcome == "done"  # 09:00 was before it
    assert cron_jobs() == []


def test_a_changed_expression_starts_afresh(redis_client):
    beat(s={"task": "record", "cron": "0 9 * * *"}).tick((T0 + 60) * MS)
    changed = CronScheduler(schedules(s={"task": "record", "cron": "0 10 * * *"}))
    changed.sync(now_ms=(T0 + 120) * MS)
    assert changed.tick((T0 + 130) * MS).outcomes["s"].outcome == "done"  # 10:00 came before the change
    assert [c.expression for c in list_crons()] == ["0 10 * * *"]


@pytest.mark.parametrize(
    ("expression", "tz", "night", "expected"),
    [
        ("30 2 * * *", "Europe/Berlin", "2030-03-30T22:00Z", ["2030-03-31T03:00:00+02:00"]),
        ("30 2 * * *", "Europe/Berlin", "2030-10-26T22:00Z", ["2030-10-27T02:30:00+02:00"]),
        (
            "0 * * * *",
            "Europe/Berlin",
            "2030-10-26T22:00Z",
            [
                "2030-10-27T01:00:00+02:00",
                "2030-10-27T02:00:00+02:00",
                "2030-10-27T02:00:00+01:00",
                "2030-10-27T03:00:00+01:00",
                "2030-10-27T04:00:00+01:00",
                "2030-10-27T05:00:00+01:00",
            ],
        ),
    ],
)
def test_a_beat_through_a_dst_night_fires_each_tick_once(redis_client, expression, tz, night, expected):
    start = int(datetime.datetime.fromisoformat(night).timestamp())
    scheduler = CronScheduler(schedules(s={"task": "record", "cron": expression, "timezone": tz}))
    scheduler.sync(now_ms=start * MS)
    for now in range(start, start + 7 * 3600, 20):  # every 20 s through the night
        scheduler.tick(now * MS)
    zone = zoneinfo.ZoneInfo(tz)
    fired = [datetime.datetime.fromtimestamp(int(job_id.rsplit(":", 1)[1]), zone).isoformat() for job_id in cron_jobs()]
    assert fired == expected


def test_pause_skips_ticks_and_resume_does_not_catch_them_up(redis_client):
    scheduler = beat(every5=EVERY_5)
    assert scheduler.crons.control("every5", "pause", now_ms=(T0 + 100) * MS)
    assert scheduler.tick((T0 + 300) * MS).outcomes["every5"].outcome == "paused"
    assert list_crons()[0].paused
    scheduler.crons.control("every5", "resume", now_ms=(T0 + 400) * MS)
    assert beat(every5=EVERY_5).tick((T0 + 450) * MS).outcomes["every5"].outcome == "done"  # 10:05 stays skipped
    assert scheduler.tick((T0 + 600) * MS).fired == ["every5"]
    assert cron_jobs() == [f"cron:every5:{T0 + 600}"] and not list_crons()[0].paused


def test_public_pause_resume_and_run_now(redis_client):
    scheduler = CronScheduler(schedules(every5=EVERY_5))
    scheduler.sync()
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
    scheduler = CronScheduler()  # the test app's own schedules: nightly_digest and hourly_sweep
    scheduler.sync()
    nightly = {c.name: c for c in list_crons()}["nightly_digest"]
    assert (nightly.task, nightly.expression, nightly.timezone) == ("nightly_digest", "0 3 * * *", "Europe/Paris")
    assert (nightly.description, nightly.queue, nightly.data) == ("Every day at 03:00", "crons", {"kind": "digest"})
    assert nightly.paused is False and nightly.attempts == 2 and nightly.priority == 5
    paris_3am = nightly.next_run.astimezone(zoneinfo.ZoneInfo("Europe/Paris"))
    assert (paris_3am.hour, paris_3am.minute) == (3, 0)
    assert paris_3am - datetime.datetime.now(datetime.UTC) < datetime.timedelta(days=1)
    assert nightly.last_run is None and nightly.last_job_id is None and nightly.last_job_status is None


def test_a_schedule_removed_from_the_code_disappears_when_a_beat_starts(redis_client):
    beat(every5=EVERY_5, daily={"task": "record", "cron": "0 12 * * *"})
    assert [c.name for c in list_crons()] == ["daily", "every5"]
    beat(every5=EVERY_5)
    assert [c.name for c in list_crons()] == ["every5"]
    assert not [k for k in redis_client.scan_iter("*cron:daily*")]


def test_a_schedule_moved_to_another_queue_keeps_its_last_tick(redis_client):
    beat(every5=EVERY_5).tick((T0 + 300) * MS)
    moved = beat(every5={**EVERY_5, "queue": "other"})
    assert moved.tick((T0 + 310) * MS).outcomes["every5"].outcome == "done"
    assert [c.queue for c in list_crons()] == ["other"]
    assert len([k for k in redis_client.scan_iter("*:cron:every5")]) == 1


def test_a_schedule_lost_by_redis_is_registered_again(redis_client):
    scheduler = beat(every5=EVERY_5)
    redis_client.flushdb()  # a Redis restart without persistence
    assert scheduler.tick((T0 + 300) * MS).outcomes["every5"].outcome == "unknown"
    scheduler.sync(now_ms=(T0 + 301) * MS)
    assert scheduler.tick((T0 + 600) * MS).fired == ["every5"]


def test_the_host_clock_plays_no_part(redis_client, monkeypatch):
    # Due or not is decided by the Redis server's clock: a host clock an hour ahead fires nothing early.
    scheduler = CronScheduler(schedules(minutely={"task": "record", "cron": "* * * * *"}))
    scheduler.sync()
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 3600)
    server_now = scheduler.store.server_time_ms()
    result = scheduler.tick()
    assert abs(result.now_ms - server_now) < 5000
    assert result.next_due_ms <= server_now + 60_000


@pytest.mark.slow
def test_the_beat_rides_out_a_redis_restart_that_lost_everything(tmp_path):
    from tempotask_django.conf import build_settings
    from tempotask_django.embedded import EmbeddedRedis
    from tempotask_django.storage.connection import make_client
    from tempotask_django.storage.store import RedisStore

    with EmbeddedRedis(directory=str(tmp_path)) as server:
        settings = build_settings({"REDIS_URL": server.url, "KEY_PREFIX": "tempotask-test"})
        store = RedisStore(make_client(settings, socket_timeout=2, socket_connect_timeout=1), settings)
        scheduler = CronScheduler(
            schedules(every_second={"task": "noop", "cron": "* * * * * *"}), store=store, settings=settings
        )
        thread = threading.Thread(target=scheduler.run)
        thread.start()
        try:
            waiting = "tempotask-test:{default}:waiting"
            wait_until(lambda: store.client.zcard(waiting) >= 2, timeout=15, message="ticks before the restart")
            server.kill()
            time.sleep(1.5)  # the beat meets connection errors meanwhile, and keeps going
            server.start()  # without persistence: the schedule's state is gone
            wait_until(lambda: store.client.zcard(waiting) >= 2, timeout=15, message="ticks after the restart")
            assert [c.name for c in CronStore(store).list()] == ["every_second"]
        finally:
            scheduler.request_stop()
            thread.join(timeout=5)
        assert not thread.is_alive()
