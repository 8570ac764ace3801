"""Immediate mode (``TEMPOTASK["MODE"] = "immediate"``): enqueue runs the jobs at once, in the caller.

The producer adds jobs to the process's in-memory Redis as it would to a real one (same scripts,
same dedup by job id, same ``on_commit``), then sends ``producer.jobs_added``; ``run_added_jobs``
runs them here with an ``InProcessRunner``. Time does not pass: a job enqueued with ``delay`` or
``run_at`` runs at once, and a failed attempt with attempts left runs again at once (retry delays
are skipped). Jobs a running job enqueues (``ctx.add_job``) run after it, in the same call, so an
enqueue returns once every job it led to has finished.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from tempotask_django.storage.connection import get_default_store
from tempotask_django.storage.records import JobSpec
from tempotask_django.worker.inprocess import InProcessRunner

# Per thread: the queues with jobs still to run, while a run is in progress in that thread.
_in_progress = threading.local()


def run_added_jobs(sender: Any, specs: Sequence[JobSpec], results: Sequence[tuple[bool, str]], **kwargs: Any) -> None:
    """Receiver of ``producer.jobs_added``: run the jobs just added, and every job they add.

    Called while a job runs in this thread (a handler enqueued a child), it only notes the queues:
    the run in progress takes the new jobs once the running one is recorded.
    """
    store = get_default_store()
    queues: dict[str, None] = {}
    for spec, (added, status) in zip(specs, results, strict=True):
        if not added:
            continue
        if status == "delayed":  # due now: time does not pass in immediate mode
            store.retry_job(spec.queue, spec.id)
        queues[spec.queue] = None
    pending: dict[str, None] | None = getattr(_in_progress, "queues", None)
    if pending is not None:
        pending.update(queues)
        return
    if queues:
        _run(queues)


def _run(pending: dict[str, None]) -> None:
    """Run every due job of the ``pending`` queues (an ordered set) and of queues noted meanwhile."""
    _in_progress.queues = pending
    runner = InProcessRunner(list(pending), skip_retry_delays=True)
    try:
        while pending:
            queue = next(iter(pending))
            if runner.run_one(queue) is None:
                pending.pop(queue, None)
    finally:
        del _in_progress.queues
        runner.leave()
