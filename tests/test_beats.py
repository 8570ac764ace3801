"""Live beats: each beat's heartbeat on a real Redis, its interval on a fake clock, its expiry."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from tempotask_django import list_beats
from tempotask_django.scheduler import MAX_SLEEP_MS, CronScheduler, TickResult
from tempotask_django.schedules import collect_schedules
from tempotask_django.storage import presence
from tests.helpers import wait_until

pytestmark = pytest.mark.redis

HOURLY = {"hourly": {"task": "noop", "cron": "0 * * * *"}}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def beat(clock=None, **options) -> CronScheduler:
    schedules = [s for s in collect_schedules(raw={"CRONS": HOURLY}) if s.name in HOURLY]
    return CronScheduler(schedules, clock=clock or time.monotonic, **options)


def test_a_heartbeat_publishes_what_the_admin_shows(store, settings):
    scheduler = beat(kind="runcron")
    now_ms = store.server_time_ms()
    scheduler.heartbeat(now_ms)
    [info] = list_beats()
    assert info.id == scheduler.name and info.host == socket.gethostname() and info.pid == os.getpid()
    assert (info.kind, info.schedules) == ("runcron", 1)
    assert int(info.last_tick.timestamp() * 1000) == now_ms == int(info.heartbeat.timestamp() * 1000)
    assert info.started == info.last_tick
    ttl_ms = store.client.pttl(store.global_keys.beat(scheduler.name))
    assert 29_000 < ttl_ms <= 30_000  # three heartbeats of CRON_BEAT_HEARTBEAT (10 s by default)
    scheduler.heartbeat(now_ms + 10_000)
    [later] = list_beats()
    assert later.started == info.started and later.last_tick > info.last_tick


def test_the_heartbeat_follows_its_own_interval_on_a_fake_clock(store, settings):
    settings.TEMPOTASK = {**settings.TEMPOTASK, "CRON_BEAT_HEARTBEAT": 12}
    clock = FakeClock()
    scheduler = beat(clock=clock)
    writes = []
    scheduler.crons.publish_beat = lambda *args: writes.append(args[3])  # count writes, keep Redis out
    scheduler._heartbeat_if_due(1)  # the first look publishes at once
    for step in range(1, 25):  # 24 one-second steps: heartbeats at +12 s and +24 s only
        clock.now += 1
        scheduler._heartbeat_if_due(1 + step)
    assert writes == [1, 13, 25]


def test_the_beat_wakes_for_its_next_tick_or_heartbeat_whichever_is_sooner(store, settings):
    settings.TEMPOTASK = {**settings.TEMPOTASK, "CRON_BEAT_HEARTBEAT": 10}
    clock = FakeClock()
    scheduler = beat(clock=clock)
    scheduler.heartbeat(store.server_time_ms())
    idle = TickResult(now_ms=0, next_due_ms=3_600_000)  # next tick an hour away: sleep 30 s at most
    assert idle.sleep_ms() == MAX_SLEEP_MS and scheduler.wait_ms(idle) == 10_000
    clock.now += 4
    assert scheduler.wait_ms(idle) == 6_000
    assert scheduler.wait_ms(TickResult(now_ms=0, next_due_ms=2_500)) == 2_500  # a tick comes first
    clock.now += 7  # the heartbeat is overdue: no sleep, never a negative one
    assert scheduler.wait_ms(idle) == 0


def test_a_running_beat_appears_renews_and_leaves_when_stopped(store, settings):
    settings.TEMPOTASK = {**settings.TEMPOTASK, "CRON_BEAT_HEARTBEAT": 0.5}
    scheduler = beat(kind="runworkers --with-cron")
    thread = threading.Thread(target=scheduler.run, daemon=True)
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
        scheduler.request_stop()
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
