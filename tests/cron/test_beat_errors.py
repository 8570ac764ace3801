"""The beat when Redis does not answer a fire call, and when one schedule cannot be built.

A tick is the beat's to offer until Redis has answered for it (fired, already decided, missed,
paused): a connection error, READONLY during a failover or OOM leaves it owed, and the next step
offers it again. One schedule whose job cannot be built never stops the others.
"""

from __future__ import annotations

import logging
from collections import deque

import pytest
import redis
from redis.exceptions import NoScriptError, OutOfMemoryError, ReadOnlyError

from tempotask_django import list_crons
from tempotask_django.cron import CronBeat
from tempotask_django.cron.beat import REOFFER_MARGIN_S
from tests.cron.support import MS, T0, FakeClock, cron_jobs, only_schedules

pytestmark = pytest.mark.redis

EVERY_5 = {"task": "record", "cron": "*/5 * * * *", "data": {"n": 1}}
EVERY_SECOND = {"task": "record", "cron": "* * * * * *"}

REFUSALS = [
    pytest.param(lambda: redis.ConnectionError("Connection closed by server."), id="connection-error"),
    pytest.param(lambda: ReadOnlyError("You can't write against a read only replica."), id="readonly"),
    pytest.param(lambda: OutOfMemoryError("command not allowed when used memory > 'maxmemory'."), id="oom"),
]


def beat(**crons) -> CronBeat:
    """A beat for these schedules, registered at T0."""
    cron_beat = CronBeat(only_schedules(**crons))
    cron_beat.sync(now_ms=T0 * MS)
    return cron_beat


class FireCalls:
    """Stands in for the fire pipeline of one beat: refuses the next ``refusals`` calls as Redis would
    (a connection error raises; READONLY or OOM answers each script with its error), optionally after
    the server ran them (the reply lost on the way back)."""

    def __init__(self, cron_beat: CronBeat, monkeypatch, error, refusals: int = 1, ran: bool = False) -> None:
        self.direct = cron_beat.store.scripts.direct
        self.real = self.direct.pipeline
        self.error, self.refusals, self.ran = error, refusals, ran
        monkeypatch.setattr(self.direct, "pipeline", self)

    def __call__(self, commands, resend=False):
        if self.refusals <= 0:
            return self.real(commands, resend=resend)
        if self.ran:
            replies = self.real(commands, resend=resend)
            if any(isinstance(reply, NoScriptError) for reply in replies):
                return replies  # not run yet: the runner loads the script and sends it again
        self.refusals -= 1
        error = self.error()
        if isinstance(error, redis.ConnectionError):
            raise error
        return [error for _ in commands]


@pytest.mark.parametrize("error", REFUSALS)
def test_a_tick_whose_fire_call_fails_is_offered_again_and_fires_once(redis_client, monkeypatch, error):
    cron_beat = beat(every5=EVERY_5)
    FireCalls(cron_beat, monkeypatch, error)
    with pytest.raises(redis.RedisError):
        cron_beat.step((T0 + 300) * MS + 10)
    assert cron_jobs() == []
    assert cron_beat.step((T0 + 300) * MS + 900) >= 0  # Redis answers again: the same tick is offered
    assert cron_jobs() == [f"cron:every5:{T0 + 300}"]
    assert cron_beat.tick((T0 + 301) * MS).outcomes == {}  # answered: not offered a third time
    assert [c.runs for c in list_crons()] == [1]


def test_a_retry_after_a_lost_reply_is_answered_already_fired(redis_client, monkeypatch):
    cron_beat = beat(every5=EVERY_5)
    FireCalls(cron_beat, monkeypatch, lambda: redis.ConnectionError("Connection reset by peer"), ran=True)
    with pytest.raises(redis.ConnectionError):
        cron_beat.tick((T0 + 300) * MS + 10)  # the script ran and enqueued the job; the reply was lost
    assert cron_jobs() == [f"cron:every5:{T0 + 300}"]
    retry = cron_beat.tick((T0 + 300) * MS + 500)
    assert retry.outcomes["every5"].outcome == "done"  # the last-tick check: no second job, no second run
    assert cron_jobs() == [f"cron:every5:{T0 + 300}"] and [c.runs for c in list_crons()] == [1]


def test_ticks_that_came_while_redis_refused_fire_in_order_once_it_answers(redis_client, monkeypatch):
    cron_beat = beat(second=EVERY_SECOND)
    FireCalls(cron_beat, monkeypatch, lambda: OutOfMemoryError("command not allowed"), refusals=3)
    for offset in (1, 2, 3):  # three ticks refused, each offered once more at every step
        with pytest.raises(redis.RedisError):
            cron_beat.tick((T0 + offset) * MS + 5)
    result = cron_beat.tick((T0 + 4) * MS + 5)
    assert result.fired == ["second"]
    assert cron_jobs() == [f"cron:second:{T0 + offset}" for offset in (1, 2, 3, 4)]
    assert cron_beat.tick((T0 + 4) * MS + 600).outcomes == {}


def test_a_refused_tick_older_than_the_catchup_window_is_missed_not_fired(redis_client, monkeypatch, settings):
    settings.TEMPOTASK = {**settings.TEMPOTASK, "CRON_CATCHUP_WINDOW": 400}
    cron_beat = beat(every5=EVERY_5)
    FireCalls(cron_beat, monkeypatch, lambda: ReadOnlyError("You can't write against a read only replica."))
    with pytest.raises(redis.RedisError):
        cron_beat.tick((T0 + 300) * MS)
    cron_beat.tick((T0 + 750) * MS)  # back 450 s after 10:05: 10:05 is missed, 10:10 fires
    assert cron_jobs() == [f"cron:every5:{T0 + 600}"]
    [info] = list_crons()
    assert info.runs == 1


def test_a_beat_that_was_not_running_still_fires_only_the_latest_tick(redis_client):
    cron_beat = beat(every5=EVERY_5)
    cron_beat.tick((T0 + 300) * MS)
    assert cron_beat.tick((T0 + 1300) * MS).fired == ["every5"]  # no error: it slept through, as after downtime
    assert cron_jobs() == [f"cron:every5:{T0 + 300}", f"cron:every5:{T0 + 1200}"]


def test_a_schedule_that_cannot_be_built_stops_no_other(redis_client, settings, caplog):
    settings.TEMPOTASK = {**settings.TEMPOTASK, "MAX_PAYLOAD_BYTES": 64}
    cron_beat = beat(
        a_small={"task": "record", "cron": "* * * * * *"},
        b_huge={"task": "record", "cron": "* * * * * *", "data": {"blob": "x" * 200}},
        c_small={"task": "record", "cron": "* * * * * *"},
    )
    with caplog.at_level(logging.ERROR, logger="tempotask"):
        for offset in (1, 2, 3):
            assert cron_beat.tick((T0 + offset) * MS).fired == ["a_small", "c_small"]
    small = ("a_small", "c_small")
    assert cron_jobs() == sorted(f"cron:{name}:{T0 + offset}" for name in small for offset in (1, 2, 3))
    refused = [r.getMessage() for r in caplog.records if "b_huge" in r.getMessage()]
    assert len(refused) == 1 and "MAX_PAYLOAD_BYTES" in refused[0]  # logged once, not at every tick
    assert cron_beat.tick((T0 + 3) * MS + 500).sleep_ms() == 500  # it does not keep the beat awake


def test_ticks_that_come_while_the_heartbeat_fails_are_fired_when_redis_answers_again(redis_client, monkeypatch):
    """On Redis Cluster the heartbeat's keys may live on a node that is down while the schedules'
    queue is not: the ticks that came while the beat was backing off are owed, not skipped."""
    cron_beat = beat(every_second=EVERY_SECOND)
    cron_beat.step((T0 + 1) * MS + 10)  # fires T0+1, heartbeat written
    cron_beat._heartbeat_due = 0.0  # the next step writes it again
    failing = {"left": 1}
    real = cron_beat.heartbeat

    def heartbeat(now_ms: int) -> None:
        if failing["left"]:
            failing["left"] -= 1
            raise redis.ConnectionError("Error 111 connecting to the heartbeat's node")
        real(now_ms)

    monkeypatch.setattr(cron_beat, "heartbeat", heartbeat)
    with pytest.raises(redis.ConnectionError):
        cron_beat.step((T0 + 2) * MS + 10)  # T0+2 fired, then the heartbeat fails
    cron_beat.step((T0 + 5) * MS + 10)  # the beat backed off for 3 s
    assert cron_jobs() == [f"cron:every_second:{T0 + n}" for n in range(1, 6)]


class SlowClock:
    """The beat's monotonic clock, moved on by hand: a call to Redis that "takes" seconds moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_ticks_that_come_while_the_heartbeat_is_slow_are_fired_when_redis_answers(redis_client, monkeypatch):
    """On Redis Cluster a heartbeat sent to a master just killed is retried by the client until a
    replica is promoted: no error, only seconds lost. The ticks that came meanwhile are owed as after
    an error, not skipped as after downtime."""
    clock = SlowClock()
    cron_beat = CronBeat(only_schedules(every_second=EVERY_SECOND), clock=clock)
    cron_beat.sync(now_ms=T0 * MS)
    cron_beat.step((T0 + 1) * MS + 10)  # fires T0+1, heartbeat written
    cron_beat._heartbeat_due = 0.0  # the next step writes it again, slowly
    real = cron_beat.heartbeat

    def slow_heartbeat(now_ms: int) -> None:
        clock.now += 3.0  # the client retried on the dead node, then reached the promoted replica
        real(now_ms)

    monkeypatch.setattr(cron_beat, "heartbeat", slow_heartbeat)
    cron_beat.step((T0 + 2) * MS + 10)  # T0+2 fired, then the heartbeat takes 3 s
    cron_beat.step((T0 + 5) * MS + 10)
    assert cron_jobs() == [f"cron:every_second:{T0 + n}" for n in range(1, 6)]


def test_ticks_that_come_while_the_clock_read_is_slow_are_fired(redis_client, monkeypatch):
    """The server clock read, sent to a node that is down, is retried by the client too: the ticks
    that came while it waited are owed."""
    clock = SlowClock()
    cron_beat = CronBeat(only_schedules(every_second=EVERY_SECOND), clock=clock)
    cron_beat.sync(now_ms=T0 * MS)
    cron_beat.step((T0 + 1) * MS + 10)
    cron_beat._heartbeat_due = clock.now + 3600  # no heartbeat in this test
    now_ms = (T0 + 5) * MS + 10
    fire = cron_beat.crons.fire

    def slow_time() -> int:
        clock.now += 4.0
        return now_ms

    monkeypatch.setattr(cron_beat.store, "server_time_ms", slow_time)
    # The fire script takes "now" from the same (simulated) server clock.
    monkeypatch.setattr(cron_beat.crons, "fire", lambda fires, **options: fire(fires, **{**options, "now_ms": now_ms}))
    cron_beat.step()
    assert cron_jobs() == [f"cron:every_second:{T0 + n}" for n in range(1, 6)]


def snapshot(client: redis.Redis) -> dict[str, tuple[bytes, int]]:
    """Every key of the test database, dumped with its time to live (ms, 0: none). redis-py reads
    DUMP's reply undecoded whatever the client's decode_responses."""
    return {key: (client.dump(key), max(0, client.pttl(key))) for key in client.scan_iter()}


def fail_over_to(client: redis.Redis, replica: dict[str, tuple[bytes, int]]) -> None:
    """Make the test database what a replica holding ``replica`` would be once promoted: the writes
    the old master answered after it are gone."""
    client.flushdb()
    for key, (dumped, ttl_ms) in replica.items():
        client.restore(key, ttl_ms, dumped)


class Sentinels:
    """Stands in for the sentinels as the beat's store sees them: how many new masters they named."""

    def __init__(self, cron_beat: CronBeat, monkeypatch) -> None:
        self.changes = 0
        monkeypatch.setattr(cron_beat.store, "master_changes", lambda ask=False: self.changes)


def test_ticks_the_replaced_master_answered_are_offered_to_the_new_one(redis_client, monkeypatch):
    """After a failover the old master may have answered ticks (fired, or "done" when another beat
    fired them there) that never reached the new master: the ticks answered just before the change
    are offered again, oldest first, before any later tick, so the new master fires those it lacks."""
    cron_beat = beat(every_second=EVERY_SECOND)
    sentinels = Sentinels(cron_beat, monkeypatch)
    cron_beat.step((T0 + 1) * MS + 10)
    replica = snapshot(redis_client)  # the replica, promoted from here: it has T0+1
    cron_beat.step((T0 + 2) * MS + 10)
    cron_beat.step((T0 + 3) * MS + 10)  # T0+2 and T0+3: answered by the old master only
    fail_over_to(redis_client, replica)
    sentinels.changes = 1
    cron_beat.step((T0 + 4) * MS + 10)
    assert cron_jobs() == [f"cron:every_second:{T0 + n}" for n in range(1, 5)]
    [info] = list_crons()
    assert info.runs == 4  # T0+1 answered "done" on the new master: fired once
    cron_beat.step((T0 + 5) * MS + 10)
    assert cron_jobs()[-1] == f"cron:every_second:{T0 + 5}" and list_crons()[0].runs == 5


def test_a_master_change_that_lost_nothing_fires_no_tick_twice(redis_client, monkeypatch):
    cron_beat = beat(every_second=EVERY_SECOND)
    sentinels = Sentinels(cron_beat, monkeypatch)
    for offset in (1, 2, 3):
        cron_beat.step((T0 + offset) * MS + 10)
    sentinels.changes = 1
    result = cron_beat.tick((T0 + 4) * MS + 10)
    assert result.fired == ["every_second"]
    assert cron_jobs() == [f"cron:every_second:{T0 + n}" for n in range(1, 5)]
    assert list_crons()[0].runs == 4


def test_the_ticks_kept_for_a_new_master_do_not_outlive_their_margin(redis_client):
    """What the beat keeps to offer a new master again is bounded: answers older than the margin
    are forgotten, and so are the schedules they were of (runtime schedules come and go for years)."""
    clock = FakeClock()
    cron_beat = CronBeat(only_schedules(every_second=EVERY_SECOND), clock=clock)
    cron_beat.sync(now_ms=T0 * MS)
    cron_beat.tick((T0 + 1) * MS + 10)
    cron_beat._answered["a-deleted-schedule"] = deque([(clock.now, T0)])
    clock.now += REOFFER_MARGIN_S + 1
    cron_beat.tick((T0 + 2) * MS + 10)
    assert set(cron_beat._answered) == {"every_second"}
    assert [tick for _, tick in cron_beat._answered["every_second"]] == [T0 + 2]
