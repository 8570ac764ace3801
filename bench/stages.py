"""Where a worker's CPU goes, one stage at a time, on one thread (no thread hand-offs).

    .venv/bin/python bench/stages.py            # 4,000 jobs in batches of 16, best of 5 rounds

Drives the worker's own parts by hand, as its threads would: claim a batch, run each job through
the JobRunner (the benchmark's body: one INCR), compute each finish, record the batch and claim
the next in one round trip, then log and signal each outcome. Prints the CPU time of each stage per
job (the smallest of several rounds) next to the body's INCR alone. The difference between the
total here and the "S2 CPU per job" of bench/run.py is what running handlers on threads costs.
Starts its own redis-server on a free loopback port; asserts nothing.

    .venv/bin/python bench/stages.py --redis    # and Redis's own time per job, by script

With ``--redis``, one more round runs with Redis's slow log recording every command (threshold 0):
the time Redis spent executing each script (or command), per job, and how many calls per job.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tempotask_django.embedded import EmbeddedRedis  # noqa: E402

STAGES = (
    "claim and finish round trips",
    "run the job (body included)",
    "  an INCR like the body's, alone",
    "compute the finish",
    "log line and signals",
    "running-job record",
)


def measure(jobs: int, batch: int) -> dict[str, float]:
    """CPU microseconds per job of each stage, for one round of ``jobs`` jobs."""
    import redis

    from bench.benchapp import tasks
    from tempotask_django.storage.connection import get_default_store, reset_default_store
    from tempotask_django.worker import Worker
    from tempotask_django.worker.running import RunningJob

    reset_default_store()
    store = get_default_store()
    store.client.flushdb()
    for _ in range(0, jobs + batch, 100):
        tasks.incr.enqueue_many([{"total": 10**9}] * 100)
    worker = Worker(["bench"], concurrency=batch, store=store)
    body_client: redis.Redis = worker.runner.app_context["redis"]
    spent = dict.fromkeys(STAGES, 0.0)
    clock = time.process_time

    def timed(stage: str, action):
        start = clock()
        result = action()
        spent[stage] += clock() - start
        return result

    claimed = timed(STAGES[0], lambda: store.claim("bench", worker.name, batch).jobs)
    done = 0
    while done < jobs:
        finished = []
        for fields in claimed:
            running = timed(STAGES[5], lambda f=fields: RunningJob("bench", f["id"], f["entry"]))
            outcome = timed(STAGES[1], lambda f=fields: worker.runner.run_sync(f))
            timed(STAGES[2], lambda: body_client.incr("bench:stages"))
            finish = timed(STAGES[3], lambda r=running, o=outcome: worker.finisher.finish_for(r, o))
            finished.append((running, outcome, finish))
        results, next_claim = timed(
            STAGES[0], lambda b=finished: store.finish_and_claim(worker.name, [f[2] for f in b], "bench", batch)
        )
        start = clock()
        for (running, outcome, finish), result in zip(finished, results, strict=True):
            worker.finisher.after_finish(running, outcome, finish, result)
        spent[STAGES[4]] += clock() - start
        done += len(finished)
        claimed = next_claim.jobs if next_claim else []
    worker.request_stop()
    worker.shutdown()
    return {stage: seconds / done * 1e6 for stage, seconds in spent.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=16, help="jobs per claim, as runworkers --concurrency")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--redis", action="store_true", help="also profile Redis's time per job by script")
    args = parser.parse_args(argv)
    with EmbeddedRedis(prefer="system") as server:
        os.environ["BENCH_REDIS_URL"] = server.url
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
        import django

        django.setup()
        from tempotask_django.log_output import configure_logging

        configure_logging(1)  # a line per finished job, as runworkers writes it (to /dev/null here)
        logging.getLogger("tempotask").handlers[0].setStream(open(os.devnull, "w"))  # noqa: SIM115
        best: dict[str, float] = {}
        for _ in range(args.rounds):
            for stage, value in measure(args.jobs, args.batch).items():
                best[stage] = min(best.get(stage, value), value)
        print(f"CPU per job, best of {args.rounds} rounds of {args.jobs} jobs in batches of {args.batch}:")
        for stage in STAGES:
            print(f"  {stage:34} {best[stage]:7.1f} µs")
        total = sum(value for stage, value in best.items() if stage != STAGES[2])
        print(f"  {'total':34} {total:7.1f} µs")
        if args.redis:
            print_redis_profile(args.jobs, args.batch)
    return 0


def print_redis_profile(jobs: int, batch: int) -> None:
    """Redis's execution time per job of each script and command, from one round recorded in the
    slow log (it times a command's execution only: no network, no parsing). The commands a script
    runs are logged too: their lines are part of the script's time, not beside it."""
    from tempotask_django.storage.connection import get_default_store

    client = get_default_store().client
    client.config_set("slowlog-log-slower-than", 0)
    client.config_set("slowlog-max-len", 1_000_000)
    client.slowlog_reset()
    measure(jobs, batch)
    entries = client.slowlog_get(-1)
    client.config_set("slowlog-log-slower-than", 10_000)
    names = {sha: name for name, sha in get_default_store().scripts._shas.items()}
    spent: dict[str, list[int]] = {}
    for entry in entries:
        words = entry["command"].split()[:2]  # the command's name, and a script's sha
        command = [word.decode(errors="replace") if isinstance(word, bytes) else str(word) for word in words]
        name = command[0].upper()
        if name == "EVALSHA" and len(command) > 1:
            name = names.get(command[1], "script " + command[1][:8])
        if name in ("FLUSHDB", "SLOWLOG", "CONFIG"):
            continue
        spent.setdefault(name, []).append(int(entry["duration"]))
    print(f"Redis execution time per job, one round of {jobs} jobs in batches of {batch} (slow log):")
    for name, durations in sorted(spent.items(), key=lambda item: -sum(item[1])):
        print(f"  {name:24} {sum(durations) / jobs:7.1f} µs  {len(durations) / jobs:6.2f} calls/job")
    scripts = sum(sum(durations) for name, durations in spent.items() if name in names.values())
    print(f"  {'scripts in all':24} {scripts / jobs:7.1f} µs")


if __name__ == "__main__":
    sys.exit(main())
