"""The tasks the chaos suite runs. Each records its runs in the ledger (a Redis apart from the queue's)."""

from __future__ import annotations

import os
import time
from typing import Any

from django.conf import settings

from tempotask_django import task
from tempotask_django.chaos.ledger import Ledger


def context() -> dict[str, Any]:
    """TEMPOTASK["CONTEXT"]: one ledger client per worker process (built after the fork)."""
    return {"ledger": Ledger(settings.CHAOS_LEDGER_URL)}


class ChaosFailure(Exception):
    """The failure a ``work`` job asked for."""


@task(name="chaos.work")
def work(job, ctx):
    """Sleep ``data["ms"]`` milliseconds; raise when ``data["fail"]``. Returns the pid that ran it.

    Data that is not a dict (a record damaged by the bad_input scenario) runs as ``{}``.
    """
    data = job.data if isinstance(job.data, dict) else {}
    ctx.ledger.record("start", job.id, job.attempt)
    time.sleep(data.get("ms", 0) / 1000)
    ctx.ledger.record("end", job.id, job.attempt)
    if data.get("fail"):
        raise ChaosFailure("failing on purpose")
    return {"pid": os.getpid()}


@task(name="chaos.parent")
def parent(job, ctx):
    """Add ``data["children"]`` chaos.work child jobs (``ctx.add_job``), then end as ``work`` does."""
    data = job.data if isinstance(job.data, dict) else {}
    ctx.ledger.record("start", job.id, job.attempt)
    children = [ctx.add_job("chaos.work", {"ms": 0}) for _ in range(int(data.get("children", 0)))]
    ctx.ledger.record("end", job.id, job.attempt)
    return {"pid": os.getpid(), "children": children}


@task(name="chaos.tick")
def tick(job, ctx):
    """The job of every cron tick in the beats scenarios: records its run (the job id names the tick)."""
    ctx.ledger.record("start", job.id, job.attempt)
    ctx.ledger.record("end", job.id, job.attempt)


@task(name="chaos.crash")
def crash(job, ctx):
    """A poison pill: takes its whole worker process down, every time it runs."""
    ctx.ledger.record("start", job.id, job.attempt)
    os._exit(9)


@task(name="chaos.hang")
def hang(job, ctx):
    """Hangs in C code (``time.sleep``) for ``data["seconds"]``: no exception raised from Python
    reaches it, so only the hard stop ends it (the time_limits scenario)."""
    data = job.data if isinstance(job.data, dict) else {}
    ctx.ledger.record("start", job.id, job.attempt)
    time.sleep(data.get("seconds", 3600))
    ctx.ledger.record("end", job.id, job.attempt)


@task(name="chaos.spin")
def spin(job, ctx):
    """Runs Python code until stopped (the cancel scenario): records its start, and its end when
    JobCancelled (or JobTimeout) lands in it."""
    data = job.data if isinstance(job.data, dict) else {}
    ctx.ledger.record("start", job.id, job.attempt)
    try:
        deadline = time.monotonic() + data.get("seconds", 3600)
        while time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        ctx.ledger.record("end", job.id, job.attempt)
