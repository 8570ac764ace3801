"""Lowering MAX_JOBS_PER_STATUS under a long history never blocks Redis: the trim goes in slices."""

from __future__ import annotations

import random
import time
from typing import Any

from tempotask_django.chaos.lab import QUEUE, Lab
from tempotask_django.chaos.report import Result
from tempotask_django.chaos.scenarios import scenario
from tempotask_django.chaos.workload import enqueue_work, stop_figures

# Commands slower than this are logged by SLOWLOG, microseconds; the log holds this many.
SLOWLOG_THRESHOLD_US = 1000
SLOWLOG_LENGTH = 10_000
# The longest a single script call may block Redis, milliseconds.
LONGEST_ALLOWED_MS = 50


@scenario(
    "shrinking_history",
    "{total:,} completed jobs kept, then MAX_JOBS_PER_STATUS lowered to {history} and {after:,} more jobs run: "
    "the longest single script call (SLOWLOG)",
    short={"total": 20_000, "history": 300, "after": 2_000},
    long={"total": 100_000, "history": 300, "after": 5_000},
)
def shrinking_history(lab: Lab, params: dict[str, Any], rng: random.Random) -> Result:
    result = Result()
    total, history = params["total"], params["history"]
    # A short lease makes the housekeeping sweep (which trims idle queues too) run every second.
    lab.configure(MAX_JOBS_PER_STATUS=total * 2, STALLED_TIMEOUT=2)
    workers = lab.workers(2, 4)
    enqueue_work(total, rng)
    lab.wait_drained(timeout=60 + total * 0.02)
    stop_figures(result, workers)
    result.must_equal("completed jobs kept before", lab.store.inspect.count_jobs(QUEUE, "completed"), total)

    client = lab.client
    client.config_set("slowlog-log-slower-than", SLOWLOG_THRESHOLD_US)
    client.config_set("slowlog-max-len", SLOWLOG_LENGTH)
    client.slowlog_reset()
    lab.configure(MAX_JOBS_PER_STATUS=history)
    workers = lab.workers(2, 4)
    lowered = time.monotonic()
    enqueue_work(params["after"], rng)
    lab.wait_drained(timeout=60 + params["after"] * 0.02)
    deadline = time.monotonic() + 120
    while lab.store.inspect.count_jobs(QUEUE, "completed") > history and time.monotonic() < deadline:
        time.sleep(0.1)
    result.figure("seconds until the history was back to its size", time.monotonic() - lowered)
    result.must_equal("completed jobs kept after", lab.store.inspect.count_jobs(QUEUE, "completed"), history)
    stop_figures(result, workers)

    slow = client.slowlog_get(SLOWLOG_LENGTH)
    scripts = [entry for entry in slow if _command_name(entry) in {"evalsha", "eval"}]
    longest_ms = max((int(entry["duration"]) for entry in scripts), default=0) / 1000
    result.figure(f"commands slower than {SLOWLOG_THRESHOLD_US / 1000:g} ms", len(slow))
    result.figure(f"script calls slower than {SLOWLOG_THRESHOLD_US / 1000:g} ms", len(scripts))
    result.figure("longest script call, ms", longest_ms)
    result.figure("longest command, ms", max((int(entry["duration"]) for entry in slow), default=0) / 1000)
    result.must_equal(f"longest script call under {LONGEST_ALLOWED_MS} ms", longest_ms < LONGEST_ALLOWED_MS, True)
    return result


def _command_name(entry: dict[str, Any]) -> str:
    command = entry.get("command", "")
    if isinstance(command, bytes):
        command = command.decode(errors="replace")
    return str(command).split(" ", 1)[0].lower()
