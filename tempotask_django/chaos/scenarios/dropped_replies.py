"""Replies lost after Redis ran the request: a proxy drops the connection instead of answering.

Workers and the enqueueing driver reach Redis through ``ReplyDroppingProxy`` (chaos/proxy.py), which
loses a share of the replies (the server ran the request; the client sees its connection drop)
until its budget of drops is spent. Every call is sent again (storage/direct.py), and a resend
must not act twice (request ids, storage/scripts.py). Figures: jobs lost (must be 0), jobs run
twice (reported), and leases nobody used (must be 0): an attempt a claim counted for a worker that
never got the reply starts only when the lease expires, on another claim.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, cast
from urllib.parse import urlsplit

import redis

from tempotask_django.chaos.lab import QUEUE, Lab
from tempotask_django.chaos.ledger import Run
from tempotask_django.chaos.proxy import ReplyDroppingProxy
from tempotask_django.chaos.report import Result
from tempotask_django.chaos.scenarios import scenario
from tempotask_django.chaos.workload import outcome_figures, run_figures, stop_figures

# Jobs per enqueue call: a share of the enqueues lose their replies too.
ENQUEUE_BATCH = 50
# Seconds without a lease renewal before a job is taken over: a batch leased to a worker that
# never got it would be run this long after. A third of the default: a claim that raised is
# answered by its first run's batch when repeated within half of it (storage/replies.py), and the
# resends of a claim that waits on the doorbell take a few seconds (each waits up to a second).
STALLED_TIMEOUT = 10


@scenario(
    "dropped_replies",
    "{jobs:,} jobs through a proxy that drops the connection after forwarding a request, {drops:,} times; "
    "{processes} worker processes x {concurrency} threads",
    short={"jobs": 1000, "drops": 100, "share": 0.14, "processes": 2, "concurrency": 4, "max_ms": 5},
    long={"jobs": 10_000, "drops": 1000, "share": 0.14, "processes": 2, "concurrency": 4, "max_ms": 5},
)
def dropped_replies(lab: Lab, params: dict[str, Any], rng: random.Random) -> Result:
    result = Result()
    jobs = params["jobs"]
    direct_url = lab.server.url
    target = urlsplit(direct_url)
    with ReplyDroppingProxy(target.hostname or "127.0.0.1", target.port or 6379) as proxy:
        proxied_url = f"redis://127.0.0.1:{proxy.port}{target.path}"
        lab.configure(
            REDIS_URL=proxied_url, STALLED_TIMEOUT=STALLED_TIMEOUT, MAX_JOBS_PER_STATUS=jobs + 100, SHUTDOWN_TIMEOUT=10
        )
        workers = lab.workers(params["processes"], params["concurrency"])
        proxy.drop_share(params["share"], params["drops"], random.Random(rng.random()))
        started = time.monotonic()
        ids, repeated = _enqueue(jobs, rng, params["max_ms"])  # through the proxy too
        result.figure("enqueue calls repeated after an error", repeated)
        lab.configure(REDIS_URL=direct_url)  # the driver's own reads from here on are not dropped
        drained = lab.wait_drained(timeout=60 + jobs * 0.03)
        result.figure("time to drain, s", time.monotonic() - started if drained else None)
        result.figure("requests forwarded", proxy.requests)
        result.figure("connections dropped after a request", proxy.drops)
        if proxy.budget_left:
            result.note(f"the run ended before the proxy chose {params['drops']} requests to drop")
        stop_figures(result, workers)

    outcome_figures(lab, result, ids)
    runs = lab.ledger.entries()
    run_figures(result, runs)
    unstarted = unstarted_attempts(lab, ids, runs)
    result.must_equal("attempts leased to nobody (counted, never started)", sum(unstarted.values()), 0)
    for job_id in list(unstarted)[:5]:
        record = cast(dict[str, str], lab.client.hgetall(lab.store.keys(QUEUE).job(job_id)))
        starts = [(run.attempt, run.pid) for run in runs if run.job == job_id and run.event == "start"]
        result.note(f"job {job_id}: attempt {record.get('attempt')}, worker {record.get('worker')}, starts {starts}")
    return result


def _enqueue(count: int, rng: random.Random, max_ms: int) -> tuple[list[str], int]:
    """Enqueue ``count`` chaos.work jobs with ids of their own, as an application should when an
    enqueue may fail: a call that raised (every resend lost its reply, or a plain command did) is
    repeated, and jobs it had added already are not added twice. Returns the ids and the repeats."""
    from tempotask_django import add_jobs

    ids = [f"job-{n}" for n in range(count)]
    repeated = 0
    for start in range(0, count, ENQUEUE_BATCH):
        batch = [
            {"name": "chaos.work", "data": {"ms": rng.randint(0, max_ms)}, "job_id": job_id}
            for job_id in ids[start : start + ENQUEUE_BATCH]
        ]
        for attempt in range(20):
            try:
                add_jobs(batch, on_commit=False)
                break
            except redis.ConnectionError:
                repeated += 1
                time.sleep(0.05 * attempt)
        else:
            raise RuntimeError("enqueue failed 20 times in a row")
    return ids, repeated


def unstarted_attempts(lab: Lab, ids: Sequence[str], runs: Sequence[Run]) -> dict[str, int]:
    """Attempts counted in the jobs' records that no handler started, per job that has any: each
    claim or take-over counts one, so an attempt without a start in the ledger was leased to a
    worker that never ran it."""
    started: dict[str, set[int]] = defaultdict(set)
    for run in runs:
        if run.event == "start":
            started[run.job].add(run.attempt)
    keys = lab.store.keys(QUEUE)
    missing: dict[str, int] = {}
    for start in range(0, len(ids), 5000):
        chunk = ids[start : start + 5000]
        pipe = lab.client.pipeline(transaction=False)
        for job_id in chunk:
            pipe.hget(keys.job(job_id), "attempt")
        for job_id, attempt in zip(chunk, pipe.execute(), strict=True):
            count = len(set(range(1, int(attempt or 0) + 1)) - started[job_id])
            if count:
                missing[job_id] = count
    return missing
