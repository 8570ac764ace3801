"""Measure the cron beat: fire lag and exactly-once with several ``runcron`` processes.

    .venv/bin/python benchmarks/cron_beats.py --beats 3 --seconds 30 [--kill-one] [--url redis://...]

Runs an every-second schedule (the test project's ``noop`` task) under N beats for the given time,
on a throwaway Redis (or ``--url``, which must be an empty database), then reports, from the jobs in
Redis and the beats' logs: ticks fired, duplicates, missing ticks, and the fire lag (a job's enqueue
time minus its tick, both by the Redis server's clock): median, 95th percentile and worst.
``--kill-one`` SIGKILLs one beat halfway through.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tempotask_django.embedded import EmbeddedRedis  # noqa: E402

PREFIX = "tempotask-test"
CRONS = {"CRONS": {"every-second": {"task": "noop", "cron": "* * * * * *"}}}
FIRED = re.compile(r"cron every-second: enqueued job cron:every-second:(\d+) ")


def start_beat(url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(ROOT),
        "TEMPOTASK_TEST_REDIS_URL": url,
        "TEMPOTASK_TEST_OVERRIDES": json.dumps(CRONS),
        "TEMPOTASK_TEST_LOG_LEVEL": "INFO",
    }
    with open(log, "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "django", "runcron"], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )


def measure(url: str, beats: int, seconds: float, kill_one: bool, logs: Path) -> dict:
    client = redis.Redis.from_url(url, decode_responses=True)
    if client.dbsize():
        raise SystemExit(f"{url} is not empty; give an empty database")
    processes = [start_beat(url, logs / f"beat-{n}.log") for n in range(beats)]
    try:
        time.sleep(seconds / 2)
        if kill_one:
            processes[0].send_signal(signal.SIGKILL)
        time.sleep(seconds / 2)
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
    logged = [int(tick) for n in range(beats) for tick in FIRED.findall((logs / f"beat-{n}.log").read_text())]
    ids = client.zrange(f"{PREFIX}:{{default}}:waiting", 0, -1)
    pipe = client.pipeline(transaction=False)
    for job_id in ids:
        pipe.hget(f"{PREFIX}:{{default}}:job:{job_id}", "enqueued_at")
    enqueued = zip(ids, pipe.execute(), strict=True)
    lags = sorted(int(at) - int(job_id.rsplit(":", 1)[1]) * 1000 for job_id, at in enqueued)
    ticks = sorted(set(logged))
    missing = len(set(range(ticks[0], ticks[-1] + 1)) - set(ticks)) if ticks else 0
    return {
        "beats": beats,
        "seconds": seconds,
        "killed_one": kill_one,
        "ticks_fired": len(ticks),
        "duplicates": len(logged) - len(ticks),
        "missing": missing,
        "jobs_in_redis": len(ids),
        "lag_ms_median": statistics.median(lags) if lags else None,
        "lag_ms_p95": lags[int(len(lags) * 0.95) - 1] if lags else None,
        "lag_ms_worst": max(lags, default=None),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--beats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--kill-one", action="store_true", help="SIGKILL one beat halfway through")
    parser.add_argument("--url", help="an empty Redis database to use instead of a throwaway server")
    args = parser.parse_args()
    with ExitStack() as stack:
        url = args.url or stack.enter_context(EmbeddedRedis()).url
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cron-beats-")))
        print(json.dumps(measure(url, args.beats, args.seconds, args.kill_one, logs), indent=2))


if __name__ == "__main__":
    main()
