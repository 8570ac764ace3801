"""The beat one step at a time with a controllable clock, its heartbeat and its loop, on a real Redis."""

from __future__ import annotations

import datetime
import threading
import time
import zoneinfo

import pytest

from tempotask_django import JobStatus, get_job, list_beats, list_crons
from tempotask_django.cron import CronBeat, TickResult
from tempotask_django.cron.beat import MAX_SLEEP_MS
from tempotask_django.storage import presence
from tempotask_django.storage.crons import CronStore
from tests.cron.support import MS, T0, FakeClock, cron_jobs, only_schedules
from tests.helpers import drain, wait_until

pytestmark = pytest.mark.redis

HOURLY = {"hourly": {"task": "noop", "cron": "0 * * * *"}}


def beat(**crons) -> CronBeat:
    """A beat for these schedules, registered at T0."""
    cron_beat = CronBeat(only_schedules(**crons))
    cron_beat.sync(now_ms=T0 * MS)
    return cron_beat


def hourly_beat(clock=None, **options) -> CronBeat:
    """A beat for one hourly schedule, not registered, its heartbeat on ``clock``."""
    return CronBeat(only_schedules(**HOURLY), clock=clock or time.monotonic, **options)


EVERY_5 = {"task": "record", "cron": "*/5 * * * *", "data": {"n": 1}, "attempts": 3, "priority": 4}


def test_a_due_tick_enqueues_its_job_once(redis_client):
    cron_beat = beat(every5=EVERY_5)
    assert cron_beat.tick(T0 * MS + 200).fired == []  # the 10:00 tick is not later than the start
    result = cron_beat.tick((T0 + 300) * MS + 150)
    assert result.fired == ["every5"]
    assert cron_beat.tick((T0 + 300) * MS + 400).outcomes == {}  # this beat knows it handled it
    other = beat(every5=EVERY_5)
    assert other.tick((T0 + 300) * MS + 500).outcomes["every5"].outcome == "done"  # decided by Redis
    job = get_job(f"cron:every5:{T0 + 300}")
    assert (job.name, job.data, job.queue, job.max_attempts, job.priority) == ("record", {"n": 1}, "default", 3, 4)
    assert job.origin == "cron:every5" and job.status == JobStatus.WAITING
    assert cron_jobs() == [f"cron:every5:{T0 + 300}"]


def test_a_fired_tick_moves_the_schedules_next_run_on(redis_client):
    cron_beat = beat(every5=EVERY_5)
    assert cron_beat.tick((T0 + 300) * MS + 150).fired == ["every5"]
    (info,) = [cron for cron in list_crons() if cron.name == "every5"]
    assert info.next_run == datetime.datetime.fromtimestamp(T0 + 600, tz=datetime.UTC)  # the tick after


def test_the_beat_sleeps_until_the_next_tick(redis_client):
    cron_beat = beat(
        every20s={"task": "record", "cron": "* * * * * */20"}, daily={"task": "record", "cron": "0 12 * * *"}
    )
    result = cron_beat.tick((T0 + 5) * MS)
    assert result.next_due_ms == (T0 + 20) * MS and result.sleep_ms() == 15 * MS
    result = cron_beat.tick((T0 + 20) * MS + 7)
    assert result.fired == ["every20s"] and result.sleep_ms() == 20 * MS - 7
    result = cron_beat.tick((T0 + 3600) * MS + 10)  # 11:00 fires; the next tick of all is daily's, at 12:00
    assert result.fired == ["every20s"]
    cron_beat.schedules = cron_beat.schedules[:1]  # daily only: a tick an hour away
    cron_beat._upcoming.pop("every20s")
    assert cron_beat.tick((T0 + 3600) * MS + 20).sleep_ms() == MAX_SLEEP_MS  # look at the clock again later
    assert CronBeat([]).tick(T0 * MS).sleep_ms() == MAX_SLEEP_MS  # no schedules: idle, never spin


def test_one_step_registers_fires_heartbeats_and_says_how_long_to_sleep(redis_client):
    cron_beat = CronBeat(only_schedules(every5=EVERY_5), clock=lambda: 0.0)  # the heartbeat clock stands still
    assert cron_beat.step((T0 + 10) * MS) == 10 * MS  # registered; the next heartbeat comes before 10:05
    assert [c.name for c in list_crons()] == ["every5"] and [b.id for b in list_beats()] == [cron_beat.name]
    cron_beat._heartbeat_due = 1e9  # no heartbeat due: the wait is the tick's (capped: 10:10 is 5 min away)
    assert cron_beat.step((T0 + 300) * MS + 25) == MAX_SLEEP_MS
    assert cron_beat.step((T0 + 590) * MS) == 10 * MS
    assert cron_jobs() == [f"cron:every5:{T0 + 300}"]


def test_beats_racing_on_one_tick_enqueue_it_once(redis_client):
    beats = [beat(every5=EVERY_5) for _ in range(8)]
    results = []
    barrier = threading.Barrier(len(beats))

    def fire(cron_beat):
        barrier.wait()
        results.append(cron_beat.tick((T0 + 300) * MS + 5).outcomes["every5"].outcome)

    threads = [threading.Thread(target=fire, args=(b,)) for b in beats]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["done"] * 7 + ["fired"]
    assert cron_jobs() == [f"cron:every5:{T0 + 300}"]


def test_a_finished_tick_is_not_fired_again_although_its_job_id_is_free(redis_client):
    cron_beat = beat(every5=EVERY_5)
    cron_beat.tick((T0 + 300) * MS)
    drain()  # the job completes: enqueueing its id again would be accepted
    assert get_job(f"cron:every5:{T0 + 300}").status == JobStatus.COMPLETED
    late_beat = beat(every5=EVERY_5)
    assert late_beat.tick((T0 + 301) * MS).outcomes["every5"].outcome == "done"
    assert [c.runs for c in list_crons()] == [1]


def test_downtime_fires_only_the_most_recent_missed_tick(redis_client):
    cron_beat = beat(every5=EVERY_5)
    cron_beat.tick((T0 + 300) * MS)
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
    cron_beat = beat(daily={"task": "record", "cron": "0 9 * * *"})  # registered at 10:00
    assert cron_beat.tick((T0 + 60) * MS).outcomes["daily"].outcome == "done"  # 09:00 was before it
    assert cron_jobs() == []


def test_a_changed_expression_starts_afresh(redis_client):
    beat(s={"task": "record", "cron": "0 9 * * *"}).tick((T0 + 60) * MS)
    changed = CronBeat(only_schedules(s={"task": "record", "cron": "0 10 * * *"}))
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
    cron_beat = CronBeat(only_schedules(s={"task": "record", "cron": expression, "timezone": tz}))
    cron_beat.sync(now_ms=start * MS)
    for now in range(start, start + 7 * 3600, 20):  # every 20 s through the night
        cron_beat.tick(now * MS)
    zone = zoneinfo.ZoneInfo(tz)
    fired = [datetime.datetime.fromtimestamp(int(job_id.rsplit(":", 1)[1]), zone).isoformat() for job_id in cron_jobs()]
    assert fired == expected


def test_pause_skips_ticks_and_resume_does_not_catch_them_up(redis_client):
    cron_beat = beat(every5=EVERY_5)
    assert cron_beat.crons.control("every5", "pause", now_ms=(T0 + 100) * MS)
    assert cron_beat.tick((T0 + 300) * MS).outcomes["every5"].outcome == "paused"
    assert list_crons()[0].paused
    cron_beat.crons.control("every5", "resume", now_ms=(T0 + 400) * MS)
    assert beat(every5=EVERY_5).tick((T0 + 450) * MS).outcomes["every5"].outcome == "done"  # 10:05 stays skipped
    assert cron_beat.tick((T0 + 600) * MS).fired == ["every5"]
    assert cron_jobs() == [f"cron:every5:{T0 + 600}"] and not list_crons()[0].paused


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
    cron_beat = beat(every5=EVERY_5)
    redis_client.flushdb()  # a Redis restart without persistence
    assert cron_beat.tick((T0 + 300) * MS).outcomes["every5"].outcome == "unknown"
    cron_beat.sync(now_ms=(T0 + 301) * MS)
    assert cron_beat.tick((T0 + 600) * MS).fired == ["every5"]


def test_the_host_clock_plays_no_part(redis_client, monkeypatch):
    # Due or not is decided by the Redis server's clock: a host clock an hour ahead fires nothing early.
    cron_beat = CronBeat(only_schedules(minutely={"task": "record", "cron": "* * * * *"}))
    cron_beat.sync()
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 3600)
    server_now = cron_beat.store.server_time_ms()
    assert abs(server_now - real_time() * 1000) < 5000  # the server's clock, not the patched host's
    result = cron_beat.tick()
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
        cron_beat = CronBeat(
            only_schedules(every_second={"task": "noop", "cron": "* * * * * *"}), store=store, settings=settings
        )
        thread = threading.Thread(target=cron_beat.run)
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
            cron_beat.request_stop()
            thread.join(timeout=5)
        assert not thread.is_alive()


# -- heartbeat and loop ----------------------------------------------------------------------------
def test_the_heartbeat_follows_its_own_interval_on_a_fake_clock(store, settings):
    settings.TEMPOTASK = {**settings.TEMPOTASK, "CRON_BEAT_HEARTBEAT": 12}
    clock = FakeClock()
    cron_beat = hourly_beat(clock=clock)
    writes = []
    cron_beat.crons.publish_beat = lambda *args: writes.append(args[3])  # count writes, keep Redis out
    cron_beat._heartbeat_if_due(1)  # the first look publishes at once
    for step in range(1, 25):  # 24 one-second steps: heartbeats at +12 s and +24 s only
        clock.now += 1
        cron_beat._heartbeat_if_due(1 + step)
    assert writes == [1, 13, 25]


def test_the_beat_wakes_for_its_next_tick_or_heartbeat_whichever_is_sooner(store, settings):
    settings.TEMPOTASK = {**settings.TEMPOTASK, "CRON_BEAT_HEARTBEAT": 10}
    clock = FakeClock()
    cron_beat = hourly_beat(clock=clock)
    cron_beat.heartbeat(store.server_time_ms())
    idle = TickResult(now_ms=0, next_due_ms=3_600_000)  # next tick an hour away: sleep 30 s at most
    assert idle.sleep_ms() == MAX_SLEEP_MS and cron_beat.wait_ms(idle) == 10_000
    clock.now += 4
    assert cron_beat.wait_ms(idle) == 6_000
    assert cron_beat.wait_ms(TickResult(now_ms=0, next_due_ms=2_500)) == 2_500  # a tick comes first
    clock.now += 7  # the heartbeat is overdue: no sleep, never a negative one
    assert cron_beat.wait_ms(idle) == 0


def test_a_running_beat_appears_renews_and_leaves_when_stopped(store, settings):
    settings.TEMPOTASK = {**settings.TEMPOTASK, "CRON_BEAT_HEARTBEAT": 0.5}
    cron_beat = hourly_beat(kind="runworkers --with-cron")
    thread = threading.Thread(target=cron_beat.run, daemon=True)
    thread.start()
    try:
        first = wait_until(lambda: list_beats(), timeout=10, message="the beat's first heartbeat")[0]
        assert first.kind == "runworkers --with-cron"
        wait_until(
            lambda: list_beats() and list_beats()[0].heartbeat > first.heartbeat,
            timeout=5,
            message="a second heartbeat",
        )
    finally:
        cron_beat.request_stop()
        thread.join(timeout=5)
    assert not thread.is_alive()
    assert list_beats() == []  # gone at once, not after its TTL


def test_a_beat_that_stops_renewing_disappears_after_its_ttl(redis_client):
    index, key_of = "tests:beats", lambda member: f"tests:beat:{member}"
    presence.publish(redis_client, index, key_of("a"), "a", {"host": "h"}, ttl=0.3, now_ms=1_000_000)
    assert [entry["id"] for entry in presence.live(redis_client, index, key_of)] == ["a"]
    time.sleep(0.4)
    assert presence.live(redis_client, index, key_of) == []
    assert redis_client.zcard(index) == 1  # the index entry stays until the next heartbeat trims it
    presence.publish(redis_client, index, key_of("b"), "b", {"host": "h"}, ttl=0.3, now_ms=1_000_400)
    assert redis_client.zrange(index, 0, -1) == ["b"]
