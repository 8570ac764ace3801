"""Tasks the test suite runs."""

import asyncio
import os
import sys
import time

from tempotask_django import task


@task
def add(job, ctx):
    ctx.ledger.record("ran", job.id, attempt=job.attempt)
    return job.data["a"] + job.data["b"]


@task(attempts=3, retry_delay=0)
def flaky(job, ctx):
    """Fails until the attempt given in data['succeed_on']."""
    ctx.ledger.record("ran", job.id, attempt=job.attempt)
    if job.attempt < job.data["succeed_on"]:
        raise RuntimeError(f"attempt {job.attempt} fails")
    return "finally"


@task(attempts=2, retry_delay=0)
def always_fails(job, ctx):
    ctx.ledger.record("ran", job.id, attempt=job.attempt)
    raise ValueError("this task always fails")


@task(attempts=4, retry_delay=1, backoff="exponential")
def fails_with_backoff(job, ctx):
    raise RuntimeError("backoff")


@task(queue="slow")
def slow(job, ctx):
    ctx.ledger.record("start", job.id)
    time.sleep(job.data.get("seconds", 1))
    ctx.ledger.record("end", job.id)
    return "slept"


@task
def record(job, ctx):
    ctx.ledger.record("ran", job.id, priority=job.priority, data=job.data)


@task
def parent(job, ctx):
    child_ids = [ctx.add_job("record", {"n": n}) for n in range(job.data["children"])]
    job.log("spawned children")
    job.logger({"children": child_ids})
    return child_ids


@task
def echoes(job, ctx):
    """Logs its data's "text" (as a line and inside a dict), then returns it, or raises with it when data["fail"]."""
    job.log(job.data["text"])
    job.log({"text": job.data["text"]})
    if job.data.get("fail"):
        raise ValueError(job.data["text"])
    return {"text": job.data["text"]}


@task
def uses_context(job, ctx):
    return {"greeting": ctx.greeting, "item": ctx["greeting"], "has_ledger": "ledger" in ctx}


@task
async def async_add(job, ctx):
    await asyncio.sleep(0.01)
    ctx.ledger.record("ran", job.id)
    return job.data["a"] + job.data["b"]


@task
def exits(job, ctx):
    sys.exit(3)


@task(attempts=1)
def kills_worker(job, ctx):
    """A poison pill: takes its whole worker process down every time."""
    ctx.ledger.record("ran", job.id)
    os._exit(9)


@task
def noop(job, ctx):
    return None


@task
def fails_first_time(job, ctx):
    """Fails the first time it runs for a job id and succeeds after that (for retry tests)."""
    earlier = [entry for entry in ctx.ledger.entries("ran") if entry["job"] == job.id]
    ctx.ledger.record("ran", job.id, attempt=job.attempt)
    if not earlier:
        raise ConnectionError("the gateway timed out")
    return {"charged": job.data["amount"]}


@task(queue="crons", cron="0 3 * * *", timezone="Europe/Paris", data={"kind": "digest"}, attempts=2, priority=5)
def nightly_digest(job, ctx):
    ctx.ledger.record("ran", job.id, data=job.data)


@task(cron="@hourly")
def hourly_sweep(job, ctx):
    return None


@task
def returns_cycle(job, ctx):
    """Returns a list that contains itself: JSON cannot hold it."""
    cycle: list = []
    cycle.append(cycle)
    return cycle


@task
def naps(job, ctx):
    """Sleeps without touching Redis (the ledger lives there), so an outage cannot fail it."""
    time.sleep(job.data["seconds"])
    return "rested"


# Limits (tests/worker/test_limits.py): every job sleeps a little, so runs overlap when allowed to.
@task(queue="slow", rate_limit="10/s")
def rated(job, ctx):
    time.sleep(0.01)


@task(queue="slow", rate_limit="10/s")
async def rated_async(job, ctx):
    await asyncio.sleep(0.01)


@task(queue="slow", max_concurrency=2)
def capped(job, ctx):
    time.sleep(0.2)


@task(queue="slow", max_concurrency=2)
async def capped_async(job, ctx):
    await asyncio.sleep(0.2)


@task(queue="slow", max_concurrency=1, limit_key="tenant")
def one_per_tenant(job, ctx):
    time.sleep(0.2)


# Progress (tests/worker/test_progress.py): many reports in a tight loop, the last one 100%.
@task
def reports_progress(job, ctx):
    for percent in range(101):
        job.set_progress(percent, {"step": percent})
    return job.progress


@task
async def reports_progress_async(job, ctx):
    for percent in range(101):
        job.set_progress(percent, {"step": percent})
    return job.progress


@task
def reports_half_then_waits(job, ctx):
    job.set_progress(50, "half way")
    deadline = time.monotonic() + 10
    while not ctx.ledger.client.exists("tests:progress:go") and time.monotonic() < deadline:
        time.sleep(0.02)


@task(queue="slow", max_concurrency=1)
def capped_long(job, ctx):
    time.sleep(1.0)


# -- time limits and cancel (docs/job-control.md) ------------------------------------------------
@task(timeout=0.5, attempts=2, retry_delay=0)
def loops_past_limit(job, ctx):
    """Runs Python code until stopped: JobTimeout lands at 0.5 s; the finally block still runs."""
    ctx.ledger.record("start", job.id, attempt=job.attempt)
    try:
        while True:
            time.sleep(0.01)
    finally:
        ctx.ledger.record("cleanup", job.id, attempt=job.attempt)


@task
def loops(job, ctx):
    """Runs Python code until stopped (by a cancel, or the timeout given at enqueue)."""
    ctx.ledger.record("start", job.id, attempt=job.attempt, pid=os.getpid())
    try:
        while True:
            time.sleep(0.01)
    finally:
        ctx.ledger.record("cleanup", job.id, cancel_requested=job.cancel_requested)


@task
def checks_cancel(job, ctx):
    """Polls ``job.check_cancelled()`` between steps, swallowing the JobCancelled raised inside it."""
    from tempotask_django import JobCancelled

    ctx.ledger.record("start", job.id)
    while True:
        try:
            time.sleep(0.01)
        except JobCancelled:
            ctx.ledger.record("told", job.id, cancel_requested=job.cancel_requested)
            job.check_cancelled()  # raises JobCancelled with its own message


@task
async def async_loops(job, ctx):
    ctx.ledger.record("start", job.id, attempt=job.attempt)
    try:
        await asyncio.sleep(3600)
    finally:
        ctx.ledger.record("cleanup", job.id, cancel_requested=job.cancel_requested)


@task
def ignores_stops(job, ctx):
    """Swallows every stop (a handler the hard stop must deal with)."""
    ctx.ledger.record("start", job.id, attempt=job.attempt, pid=os.getpid())
    deadline = time.monotonic() + job.data.get("seconds", 3600)
    while time.monotonic() < deadline:
        try:
            time.sleep(0.01)
        except BaseException:
            ctx.ledger.record("swallowed", job.id)


@task
def blocks_in_c(job, ctx):
    """Blocked in C code: nothing raised from Python reaches it before it wakes."""
    ctx.ledger.record("start", job.id, attempt=job.attempt, pid=os.getpid())
    time.sleep(job.data.get("seconds", 3600))


@task
async def async_blocks_loop(job, ctx):
    """An async handler that blocks its event loop (time.sleep): cancelling its task cannot stop it."""
    ctx.ledger.record("start", job.id, attempt=job.attempt)
    time.sleep(job.data.get("seconds", 3600))


# Prefetch (tests/worker/test_prefetch.py): an async job whose run can be seen to overlap others.
@task(queue="slow")
async def async_slow(job, ctx):
    ctx.ledger.record("start", job.id)
    await asyncio.sleep(job.data.get("seconds", 0.2))
    ctx.ledger.record("end", job.id)
