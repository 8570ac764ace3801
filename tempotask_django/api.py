"""The module-level API: enqueue by name, inspect and manage jobs.

These functions use the process-wide store built from settings on first use.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tempotask_django import signals
from tempotask_django.conf import get_settings
from tempotask_django.exceptions import AmbiguousJob, InvalidJobState, JobCancelled, JobNotFound
from tempotask_django.job import Job, JobStatus
from tempotask_django.producer import enqueue, enqueue_many
from tempotask_django.registry import registry
from tempotask_django.storage.connection import get_default_store
from tempotask_django.storage.inspect import QueueStats
from tempotask_django.storage.records import CancelResult


def add_job(name: str, data: Any = None, **options: Any) -> str:
    """Enqueue a job of the task registered as ``name``; returns the job id.

    Options are those of ``Task.enqueue`` (job_id, queue, attempts, retry_delay, backoff, priority,
    delay, run_at, on_commit). An unknown name raises TaskNotRegistered here.

    Example: ``add_job("send_notification", {"user_id": 123}, job_id="notification-123")``
    """
    on_commit = options.pop("on_commit", None)
    return enqueue(registry.get(name), data, on_commit=on_commit, **options)


def add_jobs(jobs: Iterable[Mapping[str, Any]], *, on_commit: bool | None = None) -> list[str]:
    """Enqueue many jobs in one round trip. Each item is ``{"name": ..., "data": ..., **options}``.

    All items are validated before any is added. Example::

        add_jobs([{"name": "send_email", "data": {"to": a}, "job_id": f"mail-{a}"} for a in addresses])
    """
    items = []
    for job in jobs:
        options = dict(job)
        task = registry.get(options.pop("name"))
        data = options.pop("data", None)
        items.append((task, data, options))
    return enqueue_many(items, on_commit=on_commit)


def all_queues() -> list[str]:
    """Every queue known from settings, registered tasks and Redis."""
    settings = get_settings()
    configured = {settings.default_queue, *settings.queues, *(t.queue for t in registry if t.queue)}
    return get_default_store().inspect.known_queues(configured)


def lookup_order() -> list[str]:
    """The queues a lookup by id without ``queue=`` searches, in order: DEFAULT_QUEUE first, then
    every other known queue (see ``all_queues``) in alphabetical order."""
    default = get_settings().default_queue
    return [default, *(queue for queue in all_queues() if queue != default)]


def _only_queue(job_id: str, queue: str | None) -> str:
    """The queue to act on: ``queue``, or the only queue holding ``job_id``.

    Raises JobNotFound when none holds it, AmbiguousJob when several do (a write never guesses).
    """
    if queue is not None:
        return queue
    found = get_default_store().inspect.find_queues(job_id, lookup_order())
    if not found:
        raise JobNotFound(f"no job with id {job_id!r}")
    if len(found) > 1:
        raise AmbiguousJob(f"jobs with id {job_id!r} exist in queues {', '.join(found)}; pass queue= to choose one")
    return found[0]


def get_job(job_id: str, queue: str | None = None) -> Job | None:
    """The job with its status, data, result, attempts, errors, logs, timestamps and ``progress``
    (what the handler last reported with ``job.set_progress``), or None.

    A job id is unique within its queue only. With ``queue``, only that queue is looked in.
    Without it, the queues are searched in ``lookup_order()`` (DEFAULT_QUEUE first, then the others
    alphabetically) and the first job found is returned.

    Example: ``get_job("notification-123")``, ``get_job("report-7", queue="reports")``
    """
    store = get_default_store()
    found = queue if queue is not None else store.inspect.find_queue(job_id, lookup_order())
    return store.inspect.get_job(found, job_id) if found else None


def cancel_job(job_id: str, queue: str | None = None) -> JobStatus:
    """Cancel a job; returns the status it had.

    A waiting or delayed job ends ``cancelled`` at once: it never starts. A processing job is
    asked to stop: within a second its handler gets JobCancelled raised inside it (and sees
    ``job.cancel_requested``), and its worker records it ``cancelled``. A cancelled job is never
    retried; ``retry_job`` runs it again. With ``queue``, only that queue's job; without it, the job
    must exist in one queue only (AmbiguousJob otherwise). Raises JobNotFound, and InvalidJobState
    when the job already finished.

    Example: ``cancel_job("report-7", queue="reports")``
    """
    found = _only_queue(job_id, queue)
    result = cancel_in_queue(found, job_id)
    if result is None:
        raise JobNotFound(f"no job with id {job_id!r} in queue {found!r}")
    if not (result.ended or result.requested):
        raise InvalidJobState(f"job {job_id!r} is {result.previous}; only active jobs can be cancelled")
    return JobStatus(result.previous)


def cancel_in_queue(queue: str, job_id: str) -> CancelResult | None:
    """Cancel job ``job_id`` of ``queue`` (what ``cancel_job``, the admin and the CLI do); None when
    there is no such job. Sends ``job_cancelled`` for a job that ended cancelled here (its worker
    sends it for a running one)."""
    store = get_default_store()
    result = store.cancel_job(queue, job_id)
    if result is not None and result.ended:
        job = store.inspect.get_job(queue, job_id)
        if job is not None:
            error = JobCancelled(f"job {job_id} was cancelled while {result.previous}")
            signals.send(signals.job_cancelled, sender=registry.find(job.name), job=job, error=error, duration=None)
    return result


def retry_job(job_id: str, queue: str | None = None) -> JobStatus:
    """Queue a failed or cancelled (or delayed) job again now with fresh attempts. Returns its previous status.

    With ``queue``, only the job of that queue is retried. Without it, the job must exist in one
    queue only: AmbiguousJob when several queues hold a job with that id.
    Raises JobNotFound when there is no such job, InvalidJobState when it is not failed or delayed.

    Example: ``retry_job("report-7", queue="reports")``
    """
    found = _only_queue(job_id, queue)
    previous = get_default_store().retry_job(found, job_id)
    if previous is None:
        raise JobNotFound(f"no job with id {job_id!r} in queue {found!r}")
    if previous not in (JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.DELAYED):
        raise InvalidJobState(f"job {job_id!r} is {previous}; only failed, cancelled or delayed jobs can be retried")
    return JobStatus(previous)


def delete_job(job_id: str, queue: str | None = None) -> JobStatus:
    """Delete a job in any status with its logs and errors; returns the status it had.

    With ``queue``, only the job of that queue is deleted. Without it, the job must exist in one
    queue only: AmbiguousJob when several queues hold a job with that id. Raises JobNotFound.

    Example: ``delete_job("report-7", queue="reports")``
    """
    found = _only_queue(job_id, queue)
    previous = get_default_store().delete_job(found, job_id)
    if previous is None:
        raise JobNotFound(f"no job with id {job_id!r} in queue {found!r}")
    return JobStatus(previous)


def queue_stats(queue: str | None = None) -> QueueStats:
    """Jobs per status, consumers and paused flag of ``queue`` (default: DEFAULT_QUEUE)."""
    return get_default_store().inspect.queue_stats(queue or get_settings().default_queue)


def list_jobs(queue: str | None = None, status: str = "waiting", offset: int = 0, limit: int = 50) -> list[Job]:
    """A page of jobs of one status in ``queue``, newest first."""
    queue = queue or get_settings().default_queue
    return get_default_store().inspect.list_jobs(queue, JobStatus(status), offset, limit)
