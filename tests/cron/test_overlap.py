"""Overlap control: "skip" and "queue" decided by the fire script from the previous run's record.

The first tests drive one beat with fake "now" values; the last runs a real worker and a real beat:
a 3-second job on an every-second schedule.
"""

from __future__ import annotations

import threading
import time

import pytest

from tempotask_django import add_cron, list_crons
from tempotask_django.cron import CronBeat
from tempotask_django.storage.crons import CronStore
from tests.cron.support import MS, cron_jobs, only_schedules
from tests.helpers import drain, wait_until

pytestmark = pytest.mark.redis

EVERY_SECOND = "* * * * * *"


def started(store, name: str) -> int:
    return int(store.client.hget(store.keys("default").cron(name), "changed_at")) // 1000


def loaded(now_s: int, schedules=()) -> CronBeat:
    cron_beat = CronBeat(list(schedules))
    cron_beat.sync(now_ms=now_s * MS)
    return cron_beat


def outcome(cron_beat: CronBeat, now_ms: int, name: str = "rt") -> str:
    return cron_beat.tick(now_ms).outcomes[name].outcome


def test_skip_enqueues_nothing_while_the_previous_run_is_active_and_says_so(store):
    add_cron("rt", "record", EVERY_SECOND, overlap="skip")
    t = started(store, "rt") + 1
    cron_beat = loaded(t - 1)
    assert outcome(cron_beat, t * MS) == "fired"
    assert outcome(cron_beat, (t + 1) * MS) == "skipped"  # its job is still waiting
    assert outcome(cron_beat, (t + 2) * MS) == "skipped"
    drain()
    assert outcome(cron_beat, (t + 3) * MS) == "fired"
    assert cron_jobs() == [f"cron:rt:{t}", f"cron:rt:{t + 3}"]
    [info] = list_crons()
    assert info.skipped == 2
    skipped = [e.tick.timestamp() for e in CronStore(store).history("rt") if e.event == "skipped"]
    assert skipped == [t + 2, t + 1]


def test_queue_holds_one_tick_until_the_previous_run_ends(store):
    add_cron("rt", "record", EVERY_SECOND, overlap="queue")
    t = started(store, "rt") + 1
    cron_beat = loaded(t - 1)
    assert outcome(cron_beat, t * MS) == "fired"
    assert outcome(cron_beat, (t + 1) * MS) == "held"
    assert outcome(cron_beat, (t + 2) * MS) == "skipped"  # at most one waits
    assert cron_beat.tick((t + 2) * MS + 300).sleep_ms() <= 250  # it looks again soon: to release it
    assert cron_jobs() == [f"cron:rt:{t}"]
    drain()
    cron_beat.tick((t + 2) * MS + 600)  # the previous run ended: the held tick runs now
    assert cron_jobs() == [f"cron:rt:{t}", f"cron:rt:{t + 1}"]
    assert outcome(cron_beat, (t + 3) * MS) == "held"  # behind the released one
    events = [e.event for e in CronStore(store).history("rt")]
    assert events == ["held", "released", "skipped", "held", "created"]


def test_another_beat_releases_a_tick_held_by_a_beat_that_died(store):
    add_cron("rt", "record", EVERY_SECOND, overlap="queue")
    t = started(store, "rt") + 1
    first, second = loaded(t - 1), loaded(t - 1)
    first.tick(t * MS)
    assert outcome(first, (t + 1) * MS) == "held"
    assert outcome(second, (t + 1) * MS + 5) == "done"  # it learns of the held tick from the reply
    drain()
    second.tick((t + 1) * MS + 400)
    assert f"cron:rt:{t + 1}" in cron_jobs()


def test_code_and_settings_schedules_take_overlap_too(store):
    schedules = only_schedules(every={"task": "record", "cron": EVERY_SECOND, "overlap": "skip"})
    assert schedules[0].overlap == "skip"
    now = store.server_time_ms() // 1000
    cron_beat = CronBeat(schedules)
    cron_beat.sync(now_ms=now * MS)
    assert outcome(cron_beat, (now + 1) * MS, "every") == "fired"
    assert outcome(cron_beat, (now + 2) * MS, "every") == "skipped"


@pytest.mark.slow
@pytest.mark.parametrize("overlap", ["skip", "queue"])
def test_a_3_second_job_every_second_never_runs_twice_at_once(store, workers, ledger, overlap):
    workers.start("--queues", "slow", "--concurrency", "4")
    add_cron("long-job", "slow", EVERY_SECOND, data={"seconds": 3}, overlap=overlap)
    cron_beat = CronBeat([])
    runner = threading.Thread(target=cron_beat.run, daemon=True)
    runner.start()
    try:
        time.sleep(10)
    finally:
        cron_beat.request_stop()
        runner.join(timeout=10)
    wait_until(lambda: len(ledger.entries("start")) == len(ledger.entries("end")), timeout=10)
    intervals = sorted(
        (s["t"], e["t"]) for s in ledger.entries("start") for e in ledger.entries("end") if s["job"] == e["job"]
    )
    most = max(sum(1 for a, b in intervals if a <= start < b) for start, _ in intervals)
    [info] = list_crons()
    assert len(intervals) >= 2 and most == 1, intervals
    assert info.skipped >= 3  # about 2 of every 3 ticks, recorded in the schedule's history
    events = [e.event for e in CronStore(store).history("long-job", limit=200)]
    assert events.count("skipped") == info.skipped
    if overlap == "queue":
        assert "released" in events


def test_a_wrong_overlap_is_refused_where_it_is_written():
    from tempotask_django import task
    from tempotask_django.cron import schedule_problems
    from tempotask_django.exceptions import ConfigurationError

    problems = schedule_problems(raw={"CRONS": {"x": {"task": "record", "cron": "* * * * *", "overlap": "maybe"}}})
    assert [(p.check_id, "overlap must be one of" in p.message) for p in problems] == [("tempotask.E007", True)]
    with pytest.raises(ConfigurationError, match="overlap must be"):
        task(name="never-registered", cron="* * * * *", overlap="maybe")(lambda job, ctx: None)


def test_the_guide_shows_real_pictures_and_arguments():
    import inspect
    import re

    from tests.conftest import ROOT

    guide = (ROOT / "docs" / "schedules.md").read_text()
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", guide)
    assert len(pictures) == 3 and all((ROOT / "docs" / picture).is_file() for picture in pictures)
    shown = set(re.findall(r"^    (\w+)=", guide, re.MULTILINE)) | {"attempts", "priority"}
    assert shown <= set(inspect.signature(add_cron).parameters)
