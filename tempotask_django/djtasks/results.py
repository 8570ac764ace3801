"""What a job of a Django task carries, and how a stored job becomes a Django ``TaskResult``.

A Django task runs as a job of the internal task ``tempotask.django_task`` (or its async twin); the
job's data is ``{"task": module path, "args": [...], "kwargs": {...}, "backend": alias,
"run_after": ISO datetime or null}``. The job id is the ``TaskResult.id``; its queue is the task's
``queue_name`` and its priority the task's priority (Django's -100..100 is a subrange of ours and
means the same: higher runs first).
"""

from __future__ import annotations

import builtins
import datetime
import functools
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from django.utils import timezone
from django.utils.module_loading import import_string

from tempotask_django import partitions
from tempotask_django.job import Job, JobStatus

SYNC_TASK_NAME = "tempotask.django_task"
ASYNC_TASK_NAME = "tempotask.django_task_async"
TASK_NAMES = frozenset({SYNC_TASK_NAME, ASYNC_TASK_NAME})

# What a failed attempt's error says when the worker running it died (see storage/lua/reclaim.lua),
# or the attempt's lease was lost with its stream entry (storage/lua/sweep.lua).
WORKER_LOST_TYPES = {
    "Stalled": "tempotask_django.exceptions.WorkerLost",
    "PoisonPill": "tempotask_django.exceptions.WorkerLost",
    "EntryLost": "tempotask_django.exceptions.WorkerLost",
}


def status_for(job: Job) -> Any:
    """Our status as Django's: waiting/delayed -> READY, processing -> RUNNING, and so on."""
    from tempotask_django.djtasks.compat import TaskResultStatus

    return {
        JobStatus.WAITING: TaskResultStatus.READY,
        JobStatus.DELAYED: TaskResultStatus.READY,
        JobStatus.PROCESSING: TaskResultStatus.RUNNING,
        JobStatus.COMPLETED: TaskResultStatus.SUCCESSFUL,
        JobStatus.FAILED: TaskResultStatus.FAILED,
        # Django has no cancelled status: the job's errors end with the JobCancelled that stopped it.
        JobStatus.CANCELLED: TaskResultStatus.FAILED,
    }[job.status]


@dataclass(frozen=True)
class TaskCall:
    """One call of a Django task, as a job's data holds it."""

    path: str
    args: list[Any]
    kwargs: dict[str, Any]
    backend: str
    run_after: datetime.datetime | None = None

    def to_data(self) -> dict[str, Any]:
        run_after = self.run_after.isoformat() if self.run_after is not None else None
        return {
            "task": self.path,
            "args": self.args,
            "kwargs": self.kwargs,
            "backend": self.backend,
            "run_after": run_after,
        }

    @classmethod
    def from_data(cls, data: Any) -> TaskCall:
        """Read a job's data; ValueError when it is not a Django task call."""
        if not isinstance(data, dict) or not isinstance(data.get("task"), str):
            raise ValueError(f"the job's data is not a Django task call: {str(data)[:200]}")
        args, kwargs = data.get("args", []), data.get("kwargs", {})
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise ValueError("the job's data has args that are not a list or kwargs that are not a dict")
        run_after = data.get("run_after")
        return cls(
            path=data["task"],
            args=args,
            kwargs=kwargs,
            backend=str(data.get("backend") or "default"),
            run_after=datetime.datetime.fromisoformat(run_after) if run_after else None,
        )

    def load_task(self, job: Job) -> Any:
        """The Django Task, with the options this job was enqueued with."""
        from tempotask_django.djtasks.compat import Task

        try:
            task = import_string(self.path)
        except ImportError as exc:
            raise ImportError(f"task {self.path!r} of job {job.id} cannot be imported: {exc}") from exc
        if not isinstance(task, Task):
            raise SuspiciousOperation(f"Task {job.id} does not point to a Task ({self.path})")
        # The task's queue_name is the queue's name, not the partition holding the job (partitions.py).
        options = (job.priority, partitions.logical(job.queue), local_datetime(self.run_after), self.backend)
        try:
            return _configured(task, *options)
        except TypeError:  # a Task that cannot be hashed (a subclass's field): no cache for it
            return _configured.__wrapped__(task, *options)


@functools.lru_cache(maxsize=1024)
def _configured(task: Any, priority: int, queue_name: str, run_after: Any, backend: str) -> Any:
    """``task.using(...)``: Tasks are immutable, and a copy is checked against its backend each time it
    is made, so the worker makes each combination once."""
    return task.using(priority=priority, queue_name=queue_name, run_after=run_after, backend=backend)


def local_datetime(value: datetime.datetime | None) -> datetime.datetime | None:
    """Aware datetimes under USE_TZ, naive ones in the current time zone otherwise (as Django has them)."""
    if value is None or settings.USE_TZ:
        return value
    return timezone.make_naive(value) if timezone.is_aware(value) else value


def task_error(entry: dict[str, Any]) -> Any:
    """One failed attempt as a Django TaskError (class path + traceback)."""
    from tempotask_django.djtasks.compat import TaskError

    kind = str(entry.get("type") or "Exception")
    if kind in WORKER_LOST_TYPES:
        path = WORKER_LOST_TYPES[kind]
    elif "." not in kind and isinstance(getattr(builtins, kind, None), type):
        path = f"builtins.{kind}"  # the runner writes built-in exceptions by bare name
    else:
        path = kind
    traceback = entry.get("traceback") or f"{kind}: {entry.get('message', '')}\n"
    return TaskError(exception_class_path=path, traceback=traceback)


def worker_ids(job: Job) -> list[str]:
    """The worker of each attempt so far, first to last (so ``len()`` is the attempt number).

    Finished attempts are known from their error entries; the running or last attempt from the
    job's ``worker`` field. An attempt whose worker is unknown (records of older versions) is "".
    """
    by_attempt: dict[int, str] = {}
    for entry in job.errors:
        attempt = entry.get("attempt")
        if isinstance(attempt, int) and attempt >= 1:
            by_attempt[attempt] = str(entry.get("worker") or "")
    ids = [by_attempt.get(attempt, "") for attempt in range(1, job.attempt)]
    if job.attempt >= 1:
        ended_in_error = job.status in (JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.WAITING, JobStatus.DELAYED)
        last = by_attempt.get(job.attempt) if ended_in_error else None
        ids.append(last or job.worker or "")
    return ids


def to_task_result(job: Job, task: Any = None) -> Any:
    """The TaskResult of a stored job. ``task`` saves importing it when the caller has it."""
    from tempotask_django.djtasks.compat import TaskResult, TaskResultStatus

    call = TaskCall.from_data(job.data)
    status = status_for(job)
    finished = status in (TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED)
    # started_at is the start of the latest attempt (as in Django's database backend), and so is
    # last_attempted_at; finished_at is set once the task has finished for good.
    result: Any = TaskResult(
        task=task if task is not None else call.load_task(job),
        id=job.id,
        status=status,
        enqueued_at=local_datetime(job.enqueued_at),
        started_at=local_datetime(job.started_at) if job.attempt else None,
        finished_at=local_datetime(job.finished_at) if finished else None,
        last_attempted_at=local_datetime(job.started_at) if job.attempt else None,
        args=call.args,
        kwargs=call.kwargs,
        backend=call.backend,
        errors=[task_error(entry) for entry in job.errors],
        worker_ids=worker_ids(job),
    )
    if status == TaskResultStatus.SUCCESSFUL:
        object.__setattr__(result, "_return_value", job.result)
    return result
