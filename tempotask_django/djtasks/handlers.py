"""Running Django tasks in tempotask workers, and Django's task signals.

Two internal tempotask tasks run every Django task: ``tempotask.django_task`` on a worker thread
and ``tempotask.django_task_async`` on the worker's event loop (chosen at enqueue time from the
function). Each imports the Task by its module path and calls it with the stored args and kwargs
(and a ``TaskContext`` when ``takes_context``); its JSON return value becomes the job's result.
Retries, stalled-job recovery and history trimming are the engine's, as for any other job.

Signals, in the worker process: ``task_started`` just before the function runs (every attempt),
``task_finished`` once the final outcome is stored (success, or the failure of the last attempt),
so a receiver calling ``get_result()`` sees it. ``task_enqueued`` is sent by the backend.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
from typing import Any

from tempotask_django import signals
from tempotask_django.decorators import Task
from tempotask_django.djtasks.results import ASYNC_TASK_NAME, SYNC_TASK_NAME, TASK_NAMES, TaskCall, to_task_result
from tempotask_django.job import Job, JobStatus, error_record
from tempotask_django.registry import registry
from tempotask_django.storage.connection import get_default_store

logger = logging.getLogger("tempotask")


def _backend_class(alias: str) -> type:
    from tempotask_django.djtasks.compat import task_backends

    return type(task_backends[alias])


def _prepare(job: Job) -> tuple[TaskCall, Any, list[Any]]:
    """The call, a RUNNING TaskResult (sent with task_started) and the positional arguments."""
    from tempotask_django.djtasks.compat import TaskContext, task_started

    call = TaskCall.from_data(job.data)
    task = call.load_task(job)
    if job.attempt > 1:
        # Earlier attempts' errors give worker_ids (so TaskContext.attempt) and TaskResult.errors,
        # and the claimed fields lack them. Kept on the job for task_finished. A first attempt has
        # none, which saves a round trip for almost every job.
        stored = get_default_store().inspect.get_job(job.queue, job.id)
        job.errors = stored.errors if stored else []
    task_result = to_task_result(job, task)
    signals.send(task_started, sender=_backend_class(call.backend), task_result=task_result)
    args = [TaskContext(task_result=task_result), *call.args] if task.takes_context else list(call.args)
    return call, task, args


def _json_result(value: Any) -> Any:
    """The return value as JSON stores it (Django's rules; dict keys become strings)."""
    from tempotask_django.djtasks.compat import normalize_json

    return json.loads(json.dumps(normalize_json(value)))


def run_django_task(job: Job, ctx: Any) -> Any:
    call, task, args = _prepare(job)
    return _json_result(task.call(*args, **call.kwargs))


async def run_django_task_async(job: Job, ctx: Any) -> Any:
    call, task, args = _prepare(job)
    return _json_result(await task.acall(*args, **call.kwargs))


SYNC_TASK = registry.register(
    Task(
        func=run_django_task,
        name=SYNC_TASK_NAME,
        description="Runs a task of Django's Tasks framework",
        module=__name__,
    )
)
ASYNC_TASK = registry.register(
    Task(
        func=run_django_task_async,
        name=ASYNC_TASK_NAME,
        description="Runs an async task of Django's Tasks framework",
        module=__name__,
    )
)


def _finished_result(job: Job, status: JobStatus, duration: float | None, **changes: Any) -> Any:
    """The final TaskResult, from what the worker knows: the record says the same, as just stored.

    finished_at is the attempt's start (Redis clock) plus its duration, within a millisecond of
    the stored one, without a round trip.
    """
    if job.started_at is not None and duration is not None:
        finished_at = job.started_at + datetime.timedelta(seconds=duration)
    else:
        finished_at = datetime.datetime.now(datetime.UTC)
    return to_task_result(dataclasses.replace(job, status=status, finished_at=finished_at, **changes))


def _send_finished(job: Job, status: JobStatus, duration: float | None, **changes: Any) -> None:
    from tempotask_django.djtasks.compat import task_finished

    try:
        call = TaskCall.from_data(job.data)
        task_result = _finished_result(job, status, duration, **changes)
    except Exception as exc:  # e.g. the task's module is gone: the job's own error already says so
        logger.warning("job %s: no task_finished signal, its TaskResult cannot be built: %s", job.id, exc)
        return
    signals.send(task_finished, sender=_backend_class(call.backend), task_result=task_result)


def on_job_completed(job: Job, result: Any = None, duration: float | None = None, **kwargs: Any) -> None:
    """Receiver of ``job_completed``: task_finished for Django tasks."""
    if job.name in TASK_NAMES:
        _send_finished(job, JobStatus.COMPLETED, duration, result=result)


def on_job_cancelled(
    job: Job, error: BaseException | None = None, duration: float | None = None, **kwargs: Any
) -> None:
    """Receiver of ``job_cancelled``: task_finished for Django tasks, as FAILED with the JobCancelled."""
    recorded = bool(job.errors) and str(job.errors[-1].get("type", "")).endswith("JobCancelled")
    on_job_failed(job, error=None if recorded else error, will_retry=False, duration=duration)


def on_job_failed(
    job: Job, error: BaseException | None = None, will_retry: bool = False, duration: float | None = None, **kwargs: Any
) -> None:
    """Receiver of ``job_failed``: task_finished for Django tasks that will not run again."""
    if job.name not in TASK_NAMES or will_retry:
        return
    if error is None:
        _send_finished(job, JobStatus.FAILED, duration)
        return
    errors = [*job.errors, error_record(error, job.attempt, job.worker or "")]
    # Django sends task_finished of a failure inside the exception handler: its own receiver logs
    # sys.exc_info() from there, so error monitoring sees the traceback. Do the same.
    try:
        raise error
    except BaseException:
        _send_finished(job, JobStatus.FAILED, duration, errors=errors)
