"""The chaos suite's own machinery: figures, reports, the scenario registry and the exit status."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tempotask_django.chaos.ledger import Run, duplicates, percentile
from tempotask_django.chaos.report import Result, ScenarioReport, write_reports
from tempotask_django.chaos.scenarios import PROFILES, Scenario, load_all
from tempotask_django.chaos.ticks import TickCounts, TickWindow, parse_tick_job, tick_figures
from tempotask_django.chaos.workload import reclaim_delays
from tests.conftest import ROOT


def test_percentile_is_nearest_rank():
    values = [float(n) for n in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (50.0, 99.0, 100.0)
    assert percentile([], 99) is None


def test_duplicates_and_reclaim_delays_from_the_ledger():
    runs = [
        Run("start", "a", 1, 10, 1.0),
        Run("start", "b", 1, 10, 1.5),
        Run("end", "b", 1, 10, 1.6),
        Run("start", "a", 2, 11, 4.5),
        Run("end", "a", 2, 11, 4.6),
    ]
    assert duplicates(runs) == 1
    assert reclaim_delays(runs, kills=[(2.0, 10)]) == [2.5]  # killed at 2.0, restarted elsewhere at 4.5
    assert reclaim_delays(runs, kills=[(2.0, 99)]) == []


def test_a_failed_check_fails_the_report(tmp_path):
    result = Result()
    result.figure("duplicates", 3)
    result.must_equal("lost", 1, 0)
    report = ScenarioReport("kills", "title", {"jobs": 1}, 1.0, result)
    text = write_reports(tmp_path, {"profile": "short", "seed": 1, "redis_version": "7", "seconds": 1.0}, [report])
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["passed"] is False and data["scenarios"][0]["checks"][0]["ok"] is False
    assert "lost" in text and "<-- FAILED" in text and "SOME CHECKS FAILED" in text


def test_tick_job_ids_name_their_schedule_and_tick():
    assert parse_tick_job("cron:every5:1700000000") == ("every5", 1_700_000_000)
    assert parse_tick_job("cron:h-0123abcd:60") == ("h-0123abcd", 60)
    for other in ("cron:every5:", "cron::60", "cron:every5:1.5", "crons:a:60", "4f2a", "invalid-entry-1-0"):
        assert parse_tick_job(other) is None, other


def test_the_tick_window_starts_after_registration_and_ends_with_its_last_second():
    # Registered at 120.000 s: the 120 s tick is not later than that, so it never fires; 300 is the end.
    assert TickWindow(60, {"a": 120_000}, 300_000).expected() == {("a", 180), ("a", 240), ("a", 300)}
    assert TickWindow(60, {"a": 119_999}, 299_999).expected() == {("a", 120), ("a", 180), ("a", 240)}
    assert TickWindow(1, {"a": 1_500, "b": 3_000}, 4_200).expected() == {("a", 2), ("a", 3), ("a", 4), ("b", 4)}
    assert TickWindow(60, {"a": 300_000}, 300_000).expected() == set()


def test_a_tick_window_mixes_schedules_of_different_periods():
    window = TickWindow(1, {"a": 1_500, "five": 1_500}, 12_700, {"five": 5})
    assert window.expected() == {("a", n) for n in range(2, 13)} | {("five", 5), ("five", 10)}
    assert (window.last_due_ms("a"), window.last_due_ms("five")) == (12_000, 10_000)


def test_tick_counts_tell_missed_doubled_early_and_late_ticks_apart():
    window = TickWindow(60, {"a": 0, "b": 60_000}, 180_000)  # a: 60, 120, 180; b: 120, 180
    seen = Counter({("a", 60): 1, ("a", 120): 3, ("b", 120): 1, ("b", 60): 1, ("a", 240): 2, ("z", 60): 1})
    counts = TickCounts.of(window, seen)
    assert counts == TickCounts(
        expected=5, exactly_once=2, missed=2, duplicates=3, before_registration=2, after_window=1
    )
    result = Result()
    tick_figures(result, window, {"Redis": seen, "ledger": Counter(window.expected())})
    failed = {check.name for check in result.checks if not check.ok}
    assert failed == {
        "ticks fired exactly once (Redis)",
        "ticks missed (Redis)",
        "ticks fired twice or more (Redis)",
        "ticks fired before registration (Redis)",
        "ticks fired exactly once (all sources)",
    }


def test_every_scenario_has_both_profiles_and_a_title():
    scenarios = load_all()
    assert {"kills", "redis_restarts", "sigterm", "bad_input", "memory", "paused_worker"} <= set(scenarios)
    assert {"beats", "beats_simulated", "beats_outages", "time_limits", "cancel", "dropped_replies"} <= set(scenarios)
    assert {"cluster_failover", "sentinel_failover"} <= set(scenarios)
    for scenario in scenarios.values():
        assert set(scenario.params) == set(PROFILES)
        for profile in PROFILES:
            assert scenario.title_for(profile)


def test_list_runs_without_redis():
    listing = subprocess.run(
        [sys.executable, "-m", "tempotask_django.chaos", "--list"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "kills" in listing.stdout and "paused_worker" in listing.stdout and "beats_simulated" in listing.stdout


@pytest.mark.redis
def test_the_run_exits_1_when_a_check_fails(tmp_path):
    """The exit status CI relies on, with a scenario whose check fails (its own Redis servers)."""
    from tempotask_django.chaos.cli import run

    def broken(lab, params, rng):
        result = Result()
        result.must_equal("lost", lab.store.client.dbsize() + 1, 0)
        return result

    fake = Scenario("fake", "a failing scenario", broken, {"short": {}, "long": {}})
    args = argparse.Namespace(profile="short", seed=1, out=tmp_path, redis_server=None, prefer="system")
    assert run(args, [fake]) == 1
    assert json.loads((tmp_path / "report.json").read_text())["passed"] is False


def test_runtime_edits_are_judged_against_the_timeline():
    from tempotask_django.chaos.runtime_edits import Change, judge

    periods = {"every1": 1, "every5": 5}
    changes = [
        Change(100_500, "add", "every1"),  # owns 101..104
        Change(104_500, "edit", "every5"),  # owns 105..109 (105 in both)
        Change(109_500, "pause", "every5"),
        Change(112_500, "resume", "every5"),  # owns 115
        Change(116_500, "delete", "every5"),
    ]
    good = Counter({101: 1, 102: 1, 103: 1, 104: 1, 105: 1, 115: 1})
    verdict = judge(changes, periods, good, until_ms=120_000)
    assert (verdict.owed, verdict.fired_once, verdict.lost, verdict.doubled) == (6, 6, 0, 0)
    bad = Counter({101: 2, 102: 1, 103: 1, 104: 1, 106: 1, 110: 1, 118: 1, 99: 1})
    verdict = judge(changes, periods, bad, until_ms=120_000)
    assert (verdict.doubled, verdict.lost, verdict.lost_in_both) == (1, 2, 1)  # 105 (both) and 115 lost
    assert (verdict.stale_version, verdict.while_paused, verdict.while_deleted, verdict.before_creation) == (1, 1, 1, 1)


def test_the_failover_queues_spread_over_the_masters_with_a_partition_of_q2_on_each():
    """cluster_failover's queues spread over the 3 masters of cluster_servers.py's even slot split,
    placed by the keys the storage builds (a partition's hash tag is not its name): each master holds
    one partition of the partitioned queue, so each failover hits it, and leaves other queues running."""
    from redis.crc import key_slot

    from tempotask_django.chaos.cluster_servers import SLOTS
    from tempotask_django.chaos.lab import KEY_PREFIX
    from tempotask_django.chaos.scenarios.cluster_failover import PARTITIONED, QUEUE_CONFIGS, _keys

    per_master = SLOTS // 3

    def master(key: str) -> int:
        return min(2, key_slot(key.encode()) // per_master)

    keys = _keys(list(QUEUE_CONFIGS))
    on = {physical: master(key) for key, physical in keys.items()}
    assert len(QUEUE_CONFIGS) == 6 and QUEUE_CONFIGS[PARTITIONED] == {"PARTITIONS": 3}
    assert {on[f"{PARTITIONED}~{i}of3"] for i in range(3)} == {0, 1, 2}
    assert Counter(on.values()) == Counter({0: 3, 1: 3, 2: 2})
    assert all(key.startswith(f"{KEY_PREFIX}:{{") for key in keys)
    # A partition's key carries its salted tag, not its name: the name alone would land elsewhere.
    assert f"{KEY_PREFIX}:{{q2~1of3~3}}:waiting" in keys


def test_failover_figures_name_each_jobs_queue_and_when_every_worker_ran_again():
    from tempotask_django.chaos.failover import Event, _all_back, queue_of

    assert [queue_of(job) for job in ("r0-q1-17", "r1-chaos-0", "cron:every-second:60", "other")] == [
        "q1",
        "chaos",
        "chaos",
        None,
    ]
    event = Event("SIGKILL of a master", ["q1"], started=10.0, switched=12.0)
    runs = [
        Run("start", "r0-q1-1", 1, 100, 9.0),  # before the kill
        Run("start", "r0-q2-2", 1, 101, 11.0),  # another master's queue
        Run("start", "r0-q1-3", 1, 100, 12.5),
        Run("start", "r0-q1-4", 1, 101, 13.0),
    ]
    assert _all_back(runs, [100, 101], event) == 3.0
    assert _all_back(runs[:3], [100, 101], event) is None  # process 101 never ran one of q1's jobs again


def test_failover_figures_count_a_partitioned_queues_jobs_only_on_the_hit_partition():
    """A master holding one partition of q2 stops that partition only: q2's jobs in the others run on
    and do not count as the hit queue running again."""
    from tempotask_django import partitions
    from tempotask_django.chaos.failover import Event, _all_back, physical_queue_of, queue_of

    ids = [f"r0-q2-{n}" for n in range(30)]
    assert {queue_of(job) for job in ids} == {"q2"}
    by_partition = {job: physical_queue_of(job, {"q2": 3}) for job in ids}
    assert all(by_partition[job] == partitions.name("q2", partitions.index_for(job, 3), 3) for job in ids)
    assert set(by_partition.values()) == {"q2~0of3", "q2~1of3", "q2~2of3"}
    assert physical_queue_of("r0-q1-3", {"q2": 3}) == "q1" and physical_queue_of("other", {"q2": 3}) is None
    hit = [job for job in ids if by_partition[job] == "q2~1of3"]
    other = [job for job in ids if by_partition[job] != "q2~1of3"]
    event = Event("SIGKILL of a master", ["q1", "q2~1of3"], started=10.0, switched=12.0, partitions={"q2": 3})
    runs = [
        Run("start", other[0], 1, 100, 10.5),  # q2, but a partition the kill did not touch
        Run("start", other[1], 1, 101, 10.6),
        Run("start", hit[0], 1, 100, 12.0),
        Run("start", "r0-q1-1", 1, 101, 14.0),
    ]
    assert _all_back(runs, [100, 101], event) == 4.0
    assert _all_back(runs[:3], [100, 101], event) is None


def test_the_partitions_scenario_gives_its_cluster_an_absolute_folder(tmp_path, monkeypatch):
    """The servers run in their own folders: a folder relative to ours (``--out build/chaos``) made
    every node fail to start."""
    from tempotask_django.chaos.scenarios.partitions import _fresh

    monkeypatch.chdir(tmp_path)
    folder = _fresh(Path("build/chaos/partitions/cluster"))
    assert folder.is_absolute() and folder == tmp_path / "build/chaos/partitions/cluster/run0"
    assert _fresh(Path("build/chaos/partitions/cluster")).name == "run1"
