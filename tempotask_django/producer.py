"""Enqueueing: validate options and data in the caller, then add the job now or on commit.

Everything that can be wrong with a job (data, options, unknown task) raises here, in the code
that enqueued it, so a worker never meets input it cannot run.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.db import DEFAULT_DB_ALIAS, transaction
from django.dispatch import Signal

from tempotask_django import limits, partitions, serialization, signals, tracing, validation
from tempotask_django.conf import Settings, get_settings
from tempotask_django.exceptions import ConfigurationError
from tempotask_django.registry import TaskRegistry, registry
from tempotask_django.storage.connection import get_default_store
from tempotask_django.storage.records import JobSpec

if TYPE_CHECKING:
    from tempotask_django.decorators import Task

logger = logging.getLogger("tempotask")

# Internal: sent in immediate mode (MODE) after jobs were added and announced, with ``specs`` and
# ``results`` (submit's); tempotask_django/immediate.py runs them (connected in AppConfig.ready).
jobs_added = Signal()


def build_spec(
    task: Task,
    data: Any = None,
    *,
    settings: Settings,
    job_id: str | None = None,
    queue: str | None = None,
    attempts: int | None = None,
    retry_delay: float | datetime.timedelta | None = None,
    backoff: str | None = None,
    priority: int | None = None,
    delay: float | datetime.timedelta | None = None,
    run_at: datetime.datetime | None = None,
    parent_id: str | None = None,
    origin: str | None = None,
    timeout: float | datetime.timedelta | None = None,
) -> JobSpec:
    """Validate everything about one job and return what the store needs.

    The task's own options were checked when the task was built, and the settings' when they were
    loaded: only the options given here are checked (enqueueing is a hot path).
    """
    if delay is not None and run_at is not None:
        raise ValueError("give either delay or run_at, not both")
    run_at_ms = 0
    if run_at is not None:
        run_at_ms = int(validation.run_at(run_at).timestamp() * 1000)
    delay_ms = int(validation.seconds(delay, "delay") * 1000) if delay is not None else 0
    if retry_delay is not None:
        retry_delay = validation.seconds(retry_delay, "retry_delay")
    elif task.retry_delay is not None:
        retry_delay = task.retry_delay
    else:
        retry_delay = settings.retry_delay
    queue = (task.queue or settings.default_queue) if queue is None else _queue_name(queue)
    # The time limit: this call's, else the task's, else the queue's (QUEUES TIMEOUT, DEFAULT_TIMEOUT).
    limit: float | None
    if timeout is not None:
        limit = validation.timeout(timeout)
    else:
        limit = task.timeout if task.timeout is not None else settings.for_queue(queue).timeout
    return JobSpec(
        id=new_job_id() if job_id is None else validation.job_id(job_id),
        name=task.name,
        queue=queue,
        data=_data_json(task, data, settings),
        priority=task.priority if priority is None else validation.priority(priority),
        max_attempts=(task.attempts or settings.attempts) if attempts is None else validation.attempts(attempts),
        retry_delay=retry_delay,
        backoff=(task.backoff or settings.backoff) if backoff is None else validation.backoff(backoff),
        parent_id=parent_id or "",
        origin=origin or "",
        delay_ms=delay_ms,
        run_at_ms=run_at_ms,
        timeout=limit,
        checked=job_id is not None,
        **_limits(task, data, settings, queue),
    )


def _queue_name(queue: Any) -> str:
    """A queue name, or the name of a partition (a cron schedule of a partitioned queue fires into one)."""
    partition = partitions.parse(queue) if isinstance(queue, str) else None
    validation.queue_name(partition.queue if partition is not None else queue)
    return str(queue)


def _limits(task: Task, data: Any, settings: Settings, queue: str) -> dict[str, Any]:
    """The JobSpec fields that carry the task's rate and concurrency limits (none for most tasks).

    Immediate mode checks the data as Redis mode does, but runs every job at once: no limit applies.
    A partitioned queue cannot keep a limit (its log and its running set would be one key, in one hash
    slot, for jobs in many): such a job is refused here.
    """
    if task.rate_limit is None and task.max_concurrency is None:
        return {}
    if partitions.parse(queue) is not None or settings.for_queue(queue).partitions > 1:
        raise ConfigurationError(
            f"task {task.name!r} has a rate_limit or max_concurrency, which a partitioned queue cannot keep: "
            f"enqueue it into a queue without PARTITIONS (queue {partitions.logical(queue)!r} is partitioned)"
        )
    value = limits.limit_value(data, task.limit_key, task.name) if task.limit_key else None
    if settings.immediate:
        return {}
    return {
        "rate": limits.parse_rate(task.rate_limit).wire if task.rate_limit else "",
        "max_concurrency": task.max_concurrency or 0,
        "limit": limits.limit_id(task.name, value),
    }


def _data_json(task: Task, data: Any, settings: Settings) -> str:
    return serialization.encode(data, max_bytes=settings.max_payload_bytes, what=f"data of task {task.name!r}")


def new_job_id() -> str:
    """A random job id: 32 hex digits (128 random bits, as many as a UUID4 has, at a fifth of its cost)."""
    return os.urandom(16).hex()


def _build_specs(items: Sequence[tuple[Task, Any, dict[str, Any]]], settings: Settings) -> list[JobSpec]:
    """The specs of ``items``; a run of items with the same task and options (``enqueue_many``) has
    its options checked once: each further job only gets its own id and data."""
    specs: list[JobSpec] = []
    shared: tuple[Task, dict[str, Any]] | None = None
    for task, data, options in items:
        if shared is not None and shared[0] is task and shared[1] is options and "job_id" not in options:
            limit = _limits(task, data, settings, specs[-1].queue).get("limit") if task.limit_key else None
            specs.append(specs[-1].another(new_job_id(), _data_json(task, data, settings), limit))
        else:
            specs.append(build_spec(task, data, settings=settings, **options))
            shared = (task, options)
    return specs


def _wants_on_commit(on_commit: bool | None, settings: Settings) -> bool:
    wanted = settings.enqueue_on_commit if on_commit is None else on_commit
    return wanted and transaction.get_connection(DEFAULT_DB_ALIAS).in_atomic_block


def submit(specs: Sequence[JobSpec]) -> list[tuple[bool, str]]:
    """Add already-built jobs now (one round trip), send ``job_enqueued`` for each one added, and
    return (added, status) per job (not added: a job with that id is active)."""
    store = get_default_store()
    results = [store.enqueue(specs[0])] if len(specs) == 1 else store.enqueue_many(specs)
    debug = logger.isEnabledFor(logging.DEBUG)
    for spec, (added, status) in zip(specs, results, strict=True):
        if added:
            if debug:
                logger.debug("enqueued %s %s on %s (%s)", spec.name, spec.id, spec.queue, status)
            announce(spec, status)
        elif debug:
            logger.debug("job %s (%s) is already %s; not added again", spec.id, spec.name, status)
    if store.settings.immediate:
        jobs_added.send(sender=None, specs=specs, results=results)
    return results


def announce(spec: JobSpec, status: str, tasks: TaskRegistry = registry) -> None:
    """Send ``job_enqueued`` for a job just added (``status``: "waiting" or "delayed"); the sender is
    its task in ``tasks`` (None when not registered there)."""
    if not signals.job_enqueued.receivers:  # nobody listens: not even the task is looked up
        return
    signals.send(
        signals.job_enqueued,
        sender=tasks.find(spec.name),
        job_id=spec.id,
        name=spec.name,
        queue=partitions.logical(spec.queue),  # the queue's name, not the partition holding the job
        status=status,
    )


def enqueue(task: Task, data: Any = None, *, on_commit: bool | None = None, **options: Any) -> str:
    """Add one job for ``task``; returns its id. See ``Task.enqueue`` for the options."""
    settings = get_settings()
    spec = build_spec(task, data, settings=settings, **options)
    with tracing.producing([spec]) as specs:
        if _wants_on_commit(on_commit, settings):
            transaction.on_commit(lambda: submit(specs))
        else:
            submit(specs)
    return spec.id


def enqueue_many(items: Sequence[tuple[Task, Any, dict[str, Any]]], *, on_commit: bool | None = None) -> list[str]:
    """Add several jobs, each ``(task, data, options)``, in one round trip; returns their ids.

    Every job is validated before any is added: one bad item adds none.
    """
    settings = get_settings()
    specs = _build_specs(items, settings)
    if not specs:
        return []
    with tracing.producing(specs) as traced:
        if _wants_on_commit(on_commit, settings):
            transaction.on_commit(lambda: submit(traced))
        else:
            submit(traced)
    return [spec.id for spec in specs]
