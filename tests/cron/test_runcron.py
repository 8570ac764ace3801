"""``manage.py runcron`` as real processes on a real Redis: several beats, kills, skewed clocks, signals.

The multi-beat test prints the fire lag it measured (run with ``-s`` to see it): the time between a
tick and its job's enqueue, both by the Redis server's clock.
"""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tempotask_django import list_beats, list_crons
from tempotask_django.embedded import free_port
from tests.conftest import ROOT, _test_url
from tests.helpers import wait_until

pytestmark = [pytest.mark.redis, pytest.mark.slow]

EVERY_SECOND = {"CRONS": {"every-second": {"task": "noop", "cron": "* * * * * *"}}}
FIRED = re.compile(r"cron every-second: enqueued job cron:every-second:(\d+) \((-?\d+) ms after its tick\)")


def fired(workers) -> list[tuple[int, int, int]]:
    """(tick, lag ms, beat index) of every fire logged by every beat."""
    found = []
    for index, process in enumerate(workers.processes):
        for tick, lag in FIRED.findall(workers.output(process)):
            found.append((int(tick), int(lag), index))
    return sorted(found)


def check_exactly_once(fires: list[tuple[int, int, int]]) -> tuple[int, list[int]]:
    """(duplicates, missing ticks) between the first and the last tick fired."""
    ticks = [tick for tick, _, _ in fires]
    missing = sorted(set(range(ticks[0], ticks[-1] + 1)) - set(ticks))
    return len(ticks) - len(set(ticks)), missing


def start_beats(workers, count: int, overrides=EVERY_SECOND, **options) -> list[subprocess.Popen[str]]:
    return [workers.start(command="runcron", overrides=overrides, **options) for _ in range(count)]


def stop(process: subprocess.Popen[str], timeout: float = 10, signum: int = signal.SIGTERM) -> int:
    process.send_signal(signum)
    return process.wait(timeout=timeout)


def test_three_beats_for_thirty_seconds_fire_each_tick_once(workers):
    beats = start_beats(workers, 3)
    wait_until(lambda: len(fired(workers)) >= 1, timeout=30, message="the first tick")
    time.sleep(30)
    assert [stop(beat) for beat in beats] == [0, 0, 0]
    fires = fired(workers)
    duplicates, missing = check_exactly_once(fires)
    lags = [lag for _, lag, _ in fires]
    print(
        f"\n3 beats, {len(fires)} ticks of an every-second schedule: {duplicates} duplicate(s), "
        f"{len(missing)} missing; fire lag median {statistics.median(lags):.0f} ms, worst {max(lags)} ms, "
        f"fires per beat {[sum(1 for f in fires if f[2] == i) for i in range(3)]}"
    )
    assert duplicates == 0 and missing == []
    assert len(fires) >= 29
    assert [c.runs for c in list_crons() if c.name == "every-second"] == [len(fires)]
    # "Fires within one second of the scheduled time": every tick, not just the typical one. A lag is
    # the fire script's server time minus the tick, so host clocks and log delays do not count.
    assert statistics.median(lags) < 1000
    assert max(lags) < 1000, sorted(lags)[-5:]


def test_a_beat_killed_mid_run_loses_no_tick_while_another_lives(workers):
    doomed, survivor = start_beats(workers, 2)
    wait_until(lambda: len(fired(workers)) >= 6, timeout=30, message="a few ticks")
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=10)
    killed_at = time.time()
    time.sleep(6)
    assert stop(survivor) == 0
    fires = fired(workers)
    assert check_exactly_once(fires) == (0, [])
    after_kill = [tick for tick, _, beat in fires if tick > killed_at + 1]
    assert len(after_kill) >= 4 and all(beat == 1 for tick, _, beat in fires if tick > killed_at + 1)


def test_beats_with_skewed_host_clocks_fire_on_the_server_clock(workers):
    # One host 20 s ahead, one 20 s behind: judged by their own clocks, one would fire every tick
    # early (refused) and the other late. Judged by the server's, both fire on time.
    ahead = workers.start(command="runcron", overrides=EVERY_SECOND, env={"TEMPOTASK_TEST_CLOCK_SKEW": "20"})
    behind = workers.start(command="runcron", overrides=EVERY_SECOND, env={"TEMPOTASK_TEST_CLOCK_SKEW": "-20"})
    wait_until(lambda: len(fired(workers)) >= 1, timeout=30, message="the first tick")
    time.sleep(8)
    assert [stop(ahead), stop(behind)] == [0, 0]
    fires = fired(workers)
    assert check_exactly_once(fires) == (0, [])
    assert len(fires) >= 7 and statistics.median(lag for _, lag, _ in fires) < 1000


def test_sigterm_stops_the_beat_at_once_and_an_idle_beat_uses_no_cpu(workers):
    beat = workers.start(command="runcron")  # the test app's schedules: hourly and nightly
    wait_until(lambda: "cron beat started" in workers.output(beat), timeout=30, message="the beat to start")
    time.sleep(1.0)
    cpu_start = _cpu_seconds(beat.pid)
    time.sleep(3.0)
    used = _cpu_seconds(beat.pid) - cpu_start
    assert used < 0.3, f"idle beat used {used:.2f}s CPU in 3s"
    started = time.monotonic()
    assert stop(beat) == 0
    assert time.monotonic() - started < 3
    assert "cron beat stopped" in workers.output(beat)


def test_a_beat_is_listed_while_alive_and_disappears_after_sigkill_and_its_ttl(workers):
    # A heartbeat every 0.5 s (so gone 1.5 s after the last one): the beat still sleeps between them.
    beat = workers.start(command="runcron", overrides={"CRON_BEAT_HEARTBEAT": 0.5})
    wait_until(lambda: [b for b in list_beats() if b.pid == beat.pid], timeout=30, message="the beat to appear")
    [info] = list_beats()
    assert (info.kind, info.schedules) == ("runcron", 2)  # the test app's hourly and nightly schedules
    cpu_start = _cpu_seconds(beat.pid)
    time.sleep(3.0)
    used = _cpu_seconds(beat.pid) - cpu_start
    assert used < 0.3, f"an idle beat heartbeating every 0.5 s used {used:.2f}s CPU in 3s"
    assert list_beats()[0].heartbeat > info.heartbeat
    beat.send_signal(signal.SIGKILL)
    beat.wait(timeout=10)
    killed = time.monotonic()
    assert [b.pid for b in list_beats()] == [beat.pid]  # nobody withdrew it: it stays until its TTL
    wait_until(lambda: list_beats() == [], timeout=10, message="the dead beat to disappear")
    assert time.monotonic() - killed < 3


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_runworkers_with_cron_runs_the_jobs_of_its_own_beat_and_stops_cleanly(workers, ledger, signum):
    overrides = {"CRONS": {"every-second": {"task": "record", "cron": "* * * * * *", "data": {"from": "beat"}}}}
    process = workers.start("--with-cron", overrides=overrides)
    wait_until(lambda: len(ledger.entries("ran")) >= 3, timeout=30, message="three cron jobs to run")
    assert [(b.kind, b.pid) for b in list_beats()] == [("runworkers --with-cron", process.pid)]
    assert stop(process, signum=signum) == 0
    assert list_beats() == []  # a clean stop withdraws the beat at once
    output = workers.output(process)
    assert "cron beat started" in output and "cron beat stopped" in output
    runs = ledger.entries("ran")
    assert all(entry["data"] == {"from": "beat"} for entry in runs)
    assert len({entry["job"] for entry in runs}) == len(runs)
    assert all(entry["job"].startswith("cron:every-second:") for entry in runs)


def test_a_schedule_removed_from_settings_disappears_when_the_beat_next_starts(workers):
    both = {"CRONS": {"a": {"task": "noop", "cron": "0 4 * * *"}, "b": {"task": "noop", "cron": "0 5 * * *"}}}
    first = workers.start(command="runcron", overrides=both)
    wait_until(lambda: {"a", "b"} <= {c.name for c in list_crons()}, timeout=30, message="a and b registered")
    assert stop(first) == 0
    assert {"a", "b"} <= {c.name for c in list_crons()}  # still there while no beat runs
    only_a = {"CRONS": {"a": both["CRONS"]["a"]}}
    second = workers.start(command="runcron", overrides=only_a)
    wait_until(lambda: "b" not in {c.name for c in list_crons()}, timeout=30, message="b to disappear")
    assert "a" in {c.name for c in list_crons()}
    assert stop(second, signum=signal.SIGINT) == 0  # Ctrl-C stops it as cleanly as SIGTERM
    assert "cron beat stopped" in workers.output(second)


def test_the_demo_beat_fires_the_sample_minutely_cron_and_its_workers_run_it(redis_client, tmp_path):
    """``manage.py demo`` (what ./run-demo runs) fires minutely_cleanup through its beat and runs it.

    Waiting for the next whole minute would cost up to a minute, so the schedule's state says it
    has existed for five minutes with no beat running: a starting beat fires the minute that began
    last (the catch-up rule), through the same code that fires every later minute.
    """
    cron_key, index = "tempotask-demo:{crons}:cron:minutely_cleanup", "tempotask-demo:crons"
    seconds, _ = redis_client.time()
    redis_client.hset(
        cron_key, mapping={"expression": "* * * * *", "timezone": "Europe/Paris", "since": (int(seconds) - 300) * 1000}
    )
    redis_client.hset(index, "minutely_cleanup", "crons")
    env = {
        **os.environ,
        "REDIS_URL": _test_url(),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    log = tmp_path / "demo.log"
    sample = Path(ROOT) / "sample_project"
    with open(log, "w") as out:
        demo = subprocess.Popen(
            [sys.executable, "manage.py", "demo", "--no-seed", "--port", str(free_port())],
            cwd=sample,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        job_id = wait_until(
            lambda: redis_client.hget(cron_key, "last_job_id"),
            timeout=60,
            message="the demo's beat to fire minutely_cleanup",
        )
        job_key = f"tempotask-demo:{{crons}}:job:{job_id}"
        wait_until(
            lambda: redis_client.hget(job_key, "status") == "completed",
            timeout=30,
            message="the demo's workers to run the cron job",
        )
        named = re.fullmatch(r"cron:minutely_cleanup:(\d+)", job_id)
        assert named, job_id
        tick = int(named.group(1))
        assert tick % 60 == 0 and int(seconds) - tick < 120
        job = redis_client.hgetall(job_key)
        assert (job["name"], json.loads(job["data"])) == ("minutely_cleanup", {"source": "cron"})
        assert set(json.loads(job["result"])) == {"cleaned"}
        logs = [
            json.loads(line)["message"]
            for line in redis_client.lrange(f"tempotask-demo:{{crons}}:logs:{job_id}", 0, -1)
        ]
        assert logs == ["cleaning up expired sessions"]
        next_run = int(redis_client.hget(cron_key, "next_run"))
        assert next_run > tick * 1000 and next_run % 60_000 == 0  # and then the next whole minute
        assert "cron beat started" in log.read_text()
    finally:
        demo.send_signal(signal.SIGTERM)
        demo.wait(timeout=60)
        for key in redis_client.scan_iter("tempotask-demo:*"):
            redis_client.delete(key)


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
