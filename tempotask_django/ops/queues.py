"""Queue actions of ``manage.py tempotask``: pause, resume, retry-failed, purge.

Each checks the admin's permission for it, has the effect of the admin's button and writes the same
LogEntry (see audit.py).
"""

from __future__ import annotations

from django.contrib.admin.models import CHANGE, DELETION
from django.core.management.base import CommandError

from tempotask_django.job import JobStatus
from tempotask_django.ops import backend
from tempotask_django.ops.audit import Operator


def known_queue(queue: str) -> str:
    """``queue`` when the admin would list it; else CommandError naming the known ones."""
    if not backend.is_known_queue(queue):
        raise CommandError(f"no queue named {queue!r}; known queues: {', '.join(backend.all_queues())}")
    return queue


def pause(operator: Operator, queue: str) -> str:
    operator.require("pause_queue")
    queue = known_queue(queue)
    backend.pause_queue(queue)
    operator.record(CHANGE, queue, f"queue {queue}", "Paused.")
    return f"{queue} is paused: workers take no new jobs from it; running ones finish."


def resume(operator: Operator, queue: str) -> str:
    operator.require("pause_queue")
    queue = known_queue(queue)
    backend.resume_queue(queue)
    operator.record(CHANGE, queue, f"queue {queue}", "Resumed.")
    return f"{queue} is resumed."


def retry_failed(operator: Operator, queue: str) -> str:
    operator.require("retry_job")
    queue = known_queue(queue)
    count = backend.retry_failed(queue)
    operator.record(CHANGE, queue, f"queue {queue}", f"Retried {count} failed job(s).")
    return f"{count} failed job(s) of {queue} are queued again."


def purge(operator: Operator, queue: str, status: str) -> str:
    """Delete the history of one status; only completed, failed or cancelled jobs, as in the admin."""
    history = [str(each) for each in JobStatus if each.is_history]
    if status not in history:
        choices = f"{', '.join(history[:-1])} or {history[-1]}"
        raise CommandError(f"cannot purge {status!r} jobs: only {choices} jobs can be purged")
    operator.require("purge_queue")
    queue = known_queue(queue)
    count = backend.purge(queue, status)
    operator.record(DELETION, queue, f"queue {queue}", f"Purged {count} {status} job(s).")
    return f"{count} {status} job(s) of {queue} were deleted."
