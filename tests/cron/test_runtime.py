"""Runtime schedules (add_cron, update_cron, delete_cron) and the beats that fire them, on a real Redis.

Changes are stamped by the server clock; the beats are then driven with fake "now" values placed
around those stamps, so every test is exact about which tick belongs to which version.
"""

from __future__ import annotations

import time

import pytest

from tempotask_django import InvalidSchedule, add_cron, delete_cron, list_crons, pause_cron, resume_cron, update_cron
from tempotask_django.cron import CronBeat
from tempotask_django.exceptions import CronNotFound
from tempotask_django.storage.crons import CronStore
from tests.cron.support import MS, cron_jobs, only_schedules

pytestmark = pytest.mark.redis

EVERY_SECOND = "* * * * * *"
EVERY_5S = "* * * * * */5"


def fields(store, name: str, queue: str = "default") -> dict[str, str]:
    return store.client.hgetall(store.keys(queue).cron(name))


def changed_at(store, name: str, queue: str = "default") -> int:
    return int(fields(store, name, queue)["changed_at"])


def second(ms: int) -> int:
    return ms // 1000


def ticks(name: str, queue: str = "default") -> list[int]:
    return sorted(int(job_id.rsplit(":", 1)[1]) for job_id in cron_jobs(queue) if job_id.startswith(f"cron:{name}:"))


def loaded_beat(now_ms: int) -> CronBeat:
    cron_beat = CronBeat([])
    cron_beat.sync(now_ms=now_ms)
    return cron_beat


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"task": "record", "cron": "61 * * * *"}, "not a valid cron expression"),
        ({"task": "record", "cron": "* * * * *", "timezone": "Mars/Olympus"}, "Mars/Olympus"),
        ({"task": "nope", "cron": "* * * * *"}, "task 'nope' is not registered"),
        ({"task": "record", "cron": "* * * * *", "data": {"x": object()}}, "object"),
        ({"task": "record", "cron": "* * * * *", "data": {"x": "y" * 2000}}, "MAX_PAYLOAD_BYTES|bytes"),
        ({"task": "record", "cron": "* * * * *", "queue": "a b"}, "queue"),
        ({"task": "record", "cron": "* * * * *", "attempts": 0}, "attempts"),
        ({"task": "record", "cron": "* * * * *", "overlap": "sometimes"}, "overlap"),
    ],
)
def test_an_invalid_schedule_is_refused_and_nothing_is_written(redis_client, settings, options, message):
    settings.TEMPOTASK = {**settings.TEMPOTASK, "MAX_PAYLOAD_BYTES": 1024}
    with pytest.raises(InvalidSchedule, match=message):
        add_cron("bad", **options)
    assert redis_client.dbsize() == 0


def test_a_runtime_schedule_cannot_take_a_code_schedules_name(redis_client):
    with pytest.raises(InvalidSchedule, match="hourly_sweep"):
        add_cron("hourly_sweep", "record", "* * * * *")
    CronBeat().sync()
    with pytest.raises(InvalidSchedule, match="defined in the code"):
        update_cron("nightly_digest", cron="0 4 * * *")
    with pytest.raises(InvalidSchedule, match="defined in the code"):
        delete_cron("nightly_digest")
    add_cron("report", "record", "0 4 * * *")
    with pytest.raises(InvalidSchedule, match="already exists"):
        add_cron("report", "record", "0 5 * * *")


def test_list_crons_shows_both_kinds_and_where_each_comes_from(redis_client):
    CronBeat().sync()
    add_cron("report-acme", "record", "0 4 * * *", timezone="Europe/Paris", data={"customer": "acme"}, queue="reports")
    by_name = {cron.name: cron for cron in list_crons()}
    assert {name: cron.source for name, cron in by_name.items()} == {
        "hourly_sweep": "task",
        "nightly_digest": "task",
        "report-acme": "runtime",
    }
    acme = by_name["report-acme"]
    assert (acme.expression, acme.timezone, acme.queue, acme.data) == (
        "0 4 * * *",
        "Europe/Paris",
        "reports",
        {"customer": "acme"},
    )
    assert acme.version == 1 and acme.overlap == "allow"


def test_a_beat_never_removes_a_runtime_schedule_and_the_code_never_replaces_one(redis_client):
    add_cron("rt", "record", "0 4 * * *")
    CronBeat(only_schedules(rt={"task": "noop", "cron": "* * * * *"})).sync()  # the code now names one "rt"
    CronBeat([]).sync()  # a beat whose code defines nothing
    [cron] = list_crons()
    assert (cron.name, cron.source, cron.task, cron.expression) == ("rt", "runtime", "record", "0 4 * * *")


def test_a_new_schedule_fires_from_the_moment_it_was_added(store):
    add_cron("rt", "record", EVERY_5S)
    start = changed_at(store, "rt")
    cron_beat = loaded_beat(start)
    first = (second(start) // 5 + 1) * 5
    for now in range(first, first + 11):
        cron_beat.tick(now * MS + 1)
    assert ticks("rt") == [first, first + 5, first + 10]


def test_an_edit_never_doubles_a_tick_and_a_stale_beat_cannot_fire_the_old_expression(store):
    add_cron("rt", "record", EVERY_SECOND)
    start = changed_at(store, "rt")
    seen, stale = loaded_beat(start), loaded_beat(start)
    time.sleep(1.05 - (start % 1000) / 1000)  # so that a tick of the old version lies before the change
    update_cron("rt", cron=EVERY_5S)
    change = changed_at(store, "rt")
    last_old = second(change)
    assert start < last_old * MS <= change
    # The old version's last tick, offered late by a beat that did not see the change: still owed.
    assert stale.tick(last_old * MS + 1).outcomes["rt"].outcome == "fired"
    seen.reload(now_ms=change + 1)  # only this beat sees the change (what the old version owed is done)
    outcomes = []
    for now in range(last_old + 1, last_old + 12):
        seen.tick(now * MS + 1)
        outcomes.append(stale.tick(now * MS + 2).outcomes["rt"].outcome)
    assert set(outcomes) == {"stale"}  # every old tick after the change, and the new ones it offers too
    assert ticks("rt") == [last_old] + [t for t in range(last_old + 1, last_old + 12) if t % 5 == 0]
    assert stale._reload_wanted  # it reloads before its next step
    stale.step((last_old + 15) * MS + 2)
    assert stale.runtime.schedules["rt"].expression == EVERY_5S
    assert ticks("rt")[-1] == (last_old + 15) // 5 * 5


def test_a_tick_both_versions_hold_is_fired_once_by_the_new_version(store):
    add_cron("rt", "record", EVERY_SECOND)
    start = changed_at(store, "rt")
    cron_beat = loaded_beat(start)
    update_cron("rt", cron=EVERY_5S)
    change = changed_at(store, "rt")
    cron_beat.step(change)  # reloads: its version is older than the one in Redis
    both = (second(change) // 5 + 1) * 5
    for now in range(second(change) + 1, both + 1):
        cron_beat.tick(now * MS)
    assert ticks("rt")[-1] == both and ticks("rt").count(both) == 1


def test_a_deleted_schedule_never_fires_again_even_from_a_beat_that_missed_the_delete(store):
    add_cron("rt", "record", EVERY_SECOND)
    start = changed_at(store, "rt")
    stale = loaded_beat(start)
    delete_cron("rt")
    deleted = changed_at(store, "rt")
    assert "rt" not in [cron.name for cron in list_crons()]
    for now in range(second(deleted) + 1, second(deleted) + 4):
        assert stale.tick(now * MS).outcomes["rt"].outcome == "stale"
    assert not [t for t in ticks("rt") if t * MS > deleted]
    stale.reload(now_ms=(second(deleted) + 5) * MS)
    assert "rt" not in stale.runtime.schedules
    with pytest.raises(CronNotFound):
        delete_cron("rt")
    with pytest.raises(CronNotFound):
        update_cron("rt", cron=EVERY_5S)
    add_cron("rt", "record", EVERY_5S)  # the name is free again; the new one starts afresh
    assert fields(store, "rt")["gen"] == "3" and "deleted" not in fields(store, "rt")


def test_a_paused_schedule_fires_nothing_after_the_pause(store):
    add_cron("rt", "record", EVERY_SECOND)
    start = changed_at(store, "rt")
    cron_beat = loaded_beat(start)
    pause_cron("rt")
    paused = int(fields(store, "rt")["paused"])
    for now in range(second(paused) + 1, second(paused) + 4):
        assert cron_beat.tick(now * MS).outcomes["rt"].outcome == "paused"
    resume_cron("rt")
    assert not [t for t in ticks("rt") if t * MS > paused]


def test_an_edit_to_another_queue_keeps_the_last_tick_and_the_beats_follow(store):
    add_cron("rt", "record", EVERY_SECOND)
    start = changed_at(store, "rt")
    cron_beat = loaded_beat(start)
    cron_beat.tick((second(start) + 1) * MS)
    diff = update_cron("rt", queue="reports")
    assert diff == {"queue": {"before": "default", "after": "reports"}}
    change = changed_at(store, "rt", "reports")
    assert int(fields(store, "rt", "reports")["last_tick"]) == (second(start) + 1) * MS
    assert "deleted" in fields(store, "rt", "default")  # the tombstone: the old queue's version is over
    cron_beat.step(change)
    for now in range(second(change) + 1, second(change) + 3):
        cron_beat.tick(now * MS)
    # The tick fired in the old queue (its clock ran ahead of the change here) is not fired again.
    assert ticks("rt", "reports") == [t for t in range(second(change) + 1, second(change) + 3) if t > second(start) + 1]
    assert ticks("rt") == [second(start) + 1]  # the old queue fired nothing after the move


def test_history_records_every_change_with_before_and_after(store):
    add_cron("rt", "record", EVERY_SECOND, data={"n": 1})
    update_cron("rt", data={"n": 2}, overlap="skip")
    pause_cron("rt")
    events = CronStore(store).history("rt")
    assert [event.event for event in events] == ["paused", "changed", "created"]
    assert events[1].change == {
        "data": {"before": {"n": 1}, "after": {"n": 2}},
        "overlap": {"before": "allow", "after": "skip"},
    }


def test_a_schedule_deleted_while_paused_and_added_again_is_not_paused(store):
    add_cron("rt", "record", EVERY_SECOND)
    pause_cron("rt")
    delete_cron("rt")
    add_cron("rt", "record", EVERY_SECOND)
    start = changed_at(store, "rt")
    assert not list_crons()[0].paused
    assert loaded_beat(start).tick((second(start) + 1) * MS).outcomes["rt"].outcome == "fired"


def test_a_paused_schedule_moved_to_another_queue_stays_paused(store):
    add_cron("rt", "record", EVERY_SECOND)
    pause_cron("rt")
    update_cron("rt", queue="reports")
    [cron] = list_crons()
    assert cron.queue == "reports" and cron.paused
    start = changed_at(store, "rt", "reports")
    assert loaded_beat(start).tick((second(start) + 1) * MS).outcomes["rt"].outcome == "paused"


def test_a_beat_never_removes_a_runtime_schedule_missing_from_the_set_of_runtime_names(store):
    add_cron("rt", "record", "0 4 * * *")
    store.client.srem(store.global_keys.runtime_crons, "rt")  # an error between the two writes of add_cron
    CronBeat([]).sync()
    assert [cron.name for cron in list_crons()] == ["rt"]


def test_a_running_beat_picks_a_change_up_at_its_next_heartbeat(store, settings):
    from tests.cron.support import FakeClock

    clock = FakeClock()
    cron_beat = CronBeat([], clock=clock)
    now = store.server_time_ms()
    cron_beat.step(now)  # registers, heartbeats
    add_cron("rt", "record", EVERY_5S)
    cron_beat.step(now + 10)
    assert "rt" not in cron_beat.runtime.schedules  # no heartbeat due yet: it has not looked
    clock.now += cron_beat.settings.cron_beat_heartbeat
    cron_beat.step(now + 20)
    assert cron_beat.runtime.schedules["rt"].expression == EVERY_5S
    update_cron("rt", cron=EVERY_SECOND)
    clock.now += cron_beat.settings.cron_beat_heartbeat
    cron_beat.step(now + 30)
    assert cron_beat.runtime.schedules["rt"].expression == EVERY_SECOND
