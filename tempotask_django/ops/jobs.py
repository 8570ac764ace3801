"""Job actions of ``manage.py tempotask``: retry, delete, cancel one job, and enqueue a new one.

A job id is unique within its queue only: without ``--queue`` the job must exist in exactly one
queue (as ``retry_job`` and ``delete_job`` of the API require). Enqueueing goes through the admin's
own form, so the same values are accepted and refused with the same messages.
"""

from __future__ import annotations

from django.contrib.admin.models import ADDITION, CHANGE, DELETION
from django.core.management.base import CommandError

from tempotask_django.ops import backend
from tempotask_django.ops.audit import Operator
from tempotask_django.ops.queues import known_queue
from tempotask_django.views.enqueue import EnqueueForm, offered_tasks

# The command's option for each field of the admin's enqueue form (for error messages).
FORM_OPTIONS = {
    "task": "TASK",
    "json_data": "--data",
    "queue": "--queue",
    "priority": "--priority",
    "delay": "--delay",
    "attempts": "--attempts",
    "job_id": "--job-id",
}


def locate(job_id: str, queue: str | None) -> str:
    """The queue to act on: ``queue`` (which must exist), or the only queue holding ``job_id``."""
    if queue is not None:
        return known_queue(queue)
    found = backend.find_job_queues(job_id)
    if not found:
        raise CommandError(f"no job with id {job_id!r}")
    if len(found) > 1:
        raise CommandError(f"jobs with id {job_id!r} exist in queues {', '.join(found)}; pass --queue to choose one")
    return found[0]


def _missing(job_id: str, queue: str) -> CommandError:
    return CommandError(f"no job with id {job_id!r} in queue {queue!r}")


def retry(operator: Operator, job_id: str, queue: str | None = None) -> str:
    """Queue a failed, cancelled or delayed job again now, with fresh attempts."""
    operator.require("retry_job")
    queue = locate(job_id, queue)
    previous = backend.retry_job(queue, job_id)
    if previous is None:
        raise _missing(job_id, queue)
    if previous not in ("failed", "cancelled", "delayed"):
        raise CommandError(f"job {job_id} is {previous}: only failed, cancelled or delayed jobs can be retried")
    operator.record(CHANGE, f"{queue}/{job_id}", f"job {job_id} on {queue}", f"Retried (was {previous}).")
    return f"Job {job_id} is queued again (it was {previous})."


def delete(operator: Operator, job_id: str, queue: str | None = None) -> str:
    """Delete a job in any status, with its logs and errors (a running job's result is discarded)."""
    operator.require("delete_job")
    queue = locate(job_id, queue)
    previous = backend.delete_job(queue, job_id)
    if previous is None:
        raise _missing(job_id, queue)
    operator.record(DELETION, f"{queue}/{job_id}", f"job {job_id} on {queue}", f"Deleted (was {previous}).")
    return f"Job {job_id} ({previous}) was deleted."


def cancel(operator: Operator, job_id: str, queue: str | None = None) -> str:
    """Cancel a job, as the admin's Cancel does: a waiting or delayed one ends cancelled and never
    runs; a running one's worker is asked to stop it (it ends cancelled within a second or so)."""
    operator.require("cancel_job")
    queue = locate(job_id, queue)
    result = backend.cancel_job(queue, job_id)
    if result is None:
        raise _missing(job_id, queue)
    if not (result.ended or result.requested):
        raise CommandError(
            f"job {job_id} is {result.previous}: only waiting, delayed or processing jobs can be cancelled"
        )
    operator.record(CHANGE, f"{queue}/{job_id}", f"job {job_id} on {queue}", f"Cancelled (was {result.previous}).")
    if result.requested:
        return f"Job {job_id} is running: its worker was asked to stop it; it ends cancelled."
    return f"Job {job_id} ({result.previous}) was cancelled: it will not run."


def enqueue(
    operator: Operator,
    task: str,
    data: str,
    *,
    queue: str | None = None,
    priority: str | None = None,
    delay: str | None = None,
    attempts: str | None = None,
    job_id: str | None = None,
) -> str:
    """Add a job of ``task`` with ``data`` (JSON text); the options are as in the admin's form."""
    operator.require("enqueue_job")
    names = [offered.name for offered in offered_tasks()]
    if task not in names:
        raise CommandError(f"no task named {task!r} is registered; registered tasks: {', '.join(names)}")
    fields = {"task": task, "json_data": data, "queue": queue, "priority": priority, "delay": delay}
    fields |= {"attempts": attempts, "job_id": job_id}
    form = EnqueueForm({name: "" if value is None else value for name, value in fields.items()})
    if not form.is_valid() or form.spec is None:
        raise CommandError(_form_errors(form))
    spec = form.spec
    added, status = backend.submit_job(spec)
    if not added:
        return f"A job with id {spec.id} is already {status}; nothing was added."
    operator.record(
        ADDITION, f"{spec.queue}/{spec.id}", f"job {spec.id} on {spec.queue}", f"Enqueued {spec.name} ({status})."
    )
    return f"Job {spec.id} ({spec.name}) was added to {spec.queue} as {status}."


def _form_errors(form: EnqueueForm) -> str:
    """The form's errors on one line, each after the option it is about."""
    parts = []
    for field, messages in form.errors.items():
        text = " ".join(str(message) for message in messages)
        option = FORM_OPTIONS.get(field)
        parts.append(f"{option}: {text}" if option else text)
    return "; ".join(parts)
