"""Building the jobs a scenario runs, and reading the figures common to several scenarios."""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Sequence

from tempotask_django.chaos.lab import Command, Lab
from tempotask_django.chaos.ledger import Run, by_job, percentile
from tempotask_django.chaos.report import Result

# Jobs enqueued per round trip.
ENQUEUE_BATCH = 1000
FINISHED = ("completed", "failed")
# Allowed growth of memory and key count between two measurements that must be flat.
FLAT = 0.05


def enqueue_work(count: int, rng: random.Random, max_ms: int = 0, fail_ratio: float = 0.0) -> list[str]:
    """Enqueue ``count`` chaos.work jobs sleeping 0..max_ms ms, ``fail_ratio`` of them failing."""
    from tempotask_django.chaos import handlers

    ids: list[str] = []
    for start in range(0, count, ENQUEUE_BATCH):
        batch = []
        for _ in range(min(ENQUEUE_BATCH, count - start)):
            data: dict[str, object] = {"ms": rng.randint(0, max_ms) if max_ms else 0}
            if fail_ratio and rng.random() < fail_ratio:
                data["fail"] = True
            batch.append(data)
        ids += handlers.work.enqueue_many(batch)
    return ids


def outcome_figures(lab: Lab, result: Result, ids: Sequence[str], *, expect_failed: int | None = 0) -> dict:
    """Lost (must be 0) from the ledger, cross-checked with the statuses of ``ids`` in Redis.

    The ledger is the independent record: a job has run once its handler recorded its end (a job
    failing on purpose records it before raising). Statuses alone would not notice a job marked
    completed or failed whose handler never finished, so that count must be 0 too.
    """
    statuses = lab.statuses(ids)
    completed = sum(1 for status in statuses.values() if status == "completed")
    failed = sum(1 for status in statuses.values() if status == "failed")
    ended = ended_jobs(lab.ledger.entries())
    result.figure("jobs enqueued", len(ids))
    result.figure("jobs completed", completed)
    if expect_failed is None:
        result.figure("jobs failed", failed)
    else:
        result.must_equal("jobs failed", failed, expect_failed)
    result.must_equal("lost (enqueued - ran), ledger", sum(1 for job_id in ids if job_id not in ended), 0)
    result.must_equal("lost (enqueued - completed - failed), Redis", len(ids) - completed - failed, 0)
    unrun = sum(1 for job_id, status in statuses.items() if status in FINISHED and job_id not in ended)
    result.must_equal("finished in Redis, handler never ran to its end", unrun, 0)
    return statuses


def ended_jobs(runs: Sequence[Run]) -> set[str]:
    """Jobs whose handler ran to its end at least once, by the ledger."""
    return {run.job for run in runs if run.event == "end"}


def run_figures(result: Result, runs: Sequence[Run]) -> None:
    """Duplicates: handler runs beyond the first per job, and runs that reached their end twice."""
    starts, ends = by_job(runs, "start"), by_job(runs, "end")
    result.figure("handler runs", sum(len(items) for items in starts.values()))
    result.figure("duplicates (runs - distinct jobs)", sum(len(v) for v in starts.values()) - len(starts))
    result.figure("jobs whose handler ended twice", sum(1 for items in ends.values() if len(items) > 1))


def reclaim_delays(runs: Sequence[Run], kills: Sequence[tuple[float, int]]) -> list[float]:
    """For each run cut short by a SIGKILL: seconds from the kill to the job's next start elsewhere."""
    delays = []
    kill_times: dict[int, list[float]] = {}
    for t, pid in kills:
        kill_times.setdefault(pid, []).append(t)
    for job_runs in by_job(runs, "start").values():
        for first, second in itertools.pairwise(job_runs):
            killed = [t for t in kill_times.get(first.pid, []) if first.t <= t <= second.t]
            if killed:
                delays.append(second.t - killed[0])
    return delays


def delay_figures(result: Result, prefix: str, delays: list[float]) -> None:
    result.figure(f"{prefix} count", len(delays))
    result.figure(f"{prefix} p50, s", percentile(delays, 50))
    result.figure(f"{prefix} p99, s", percentile(delays, 99))
    result.figure(f"{prefix} max, s", max(delays) if delays else None)


def wait_children(command: Command, count: int, timeout: float = 30.0) -> list[int]:
    """Wait until a supervisor has ``count`` worker processes; returns their pids."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = command.children()
        if len(children) >= count:
            return sorted(children)
        time.sleep(0.02)
    return sorted(command.children())


def stop_figures(result: Result, command: Command, timeout: float = 60.0) -> None:
    """SIGTERM ``command``; its exit code must be 0."""
    code, seconds = command.stop(timeout)
    result.must_equal("exit code after SIGTERM", code, 0)
    result.figure("seconds to exit after SIGTERM", seconds)


def crashed_children(command: Command) -> list[int]:
    """Worker processes the supervisor saw die (and replaced), from its log."""
    pids = []
    for line in command.log_lines():
        if line.message.startswith("worker process ") and " exited with " in line.message:
            pids.append(int(line.message.split()[2]))
    return pids


def measure_memory(lab: Lab, samples: int = 3) -> dict[str, int]:
    """INFO memory, the key count, and the exact bytes of every key (MEMORY USAGE, all samples).

    The memory figures are the lowest of ``samples`` readings 0.5 s apart: a transient (a reply
    buffer, a free still under way) is not memory kept, while memory that is kept raises every reading.
    """
    time.sleep(1.0)  # let the last finishes and client buffers settle
    # The scripts' heap is garbage collected lazily: collect it now, so its figure is that of the scripts.
    lab.client.eval("collectgarbage('collect') return 0", 0)
    readings = []
    for sample in range(samples):
        if sample:
            time.sleep(0.5)
        info, stats = lab.client.info("memory"), lab.client.memory_stats()
        used = int(info["used_memory"])
        # The buffers of the clients connected at that instant and the cache of loaded scripts are
        # part of used_memory, and move by tens of KB whatever the jobs did.
        buffers_and_scripts = int(stats.get("clients.normal", 0)) + int(stats.get("lua.caches", 0))
        readings.append((used, used - buffers_and_scripts, int(info["used_memory_lua"])))
    # Replies kept for a resend come and go with every call (up to storage/replies.py's FORGET_AFTER
    # per process at any instant): not memory the jobs keep.
    keys = [key for key in lab.client.scan_iter(count=1000) if ":reply:" not in str(key)]
    pipe = lab.client.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key, samples=0)
    return {
        "used_memory": min(reading[0] for reading in readings),
        "used_memory less client buffers and script cache": min(reading[1] for reading in readings),
        "used_memory_lua": min(reading[2] for reading in readings),  # the scripts' heap (not in used_memory)
        "keys": len(keys),
        "bytes in keys": sum(size or 0 for size in pipe.execute()),
    }
