"""Running one claimed job: build ``job`` and ``ctx``, call the handler, describe the outcome.

Nothing here touches the worker's bookkeeping; the worker turns an Outcome into a finish.
Input the handler cannot be given (unknown task, unreadable data) is a permanent failure with
a message that says what was wrong; it never raises out of ``run_job``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.db import close_old_connections

from tempotask_django import serialization, signals
from tempotask_django.context import JobContext
from tempotask_django.decorators import Task
from tempotask_django.exceptions import TaskNotRegistered
from tempotask_django.job import Job
from tempotask_django.registry import TaskRegistry

logger = logging.getLogger("tempotask")

# Database connection hygiene, as Django does around a request: before and after each job, close
# connections that failed or outlived CONN_MAX_AGE. The check costs microseconds of asgiref
# bookkeeping, a lot at thousands of jobs a second; a thread that checked after its previous job
# less than this many seconds ago skips the check before the next one (the one after still runs).
RECENT_CHECK_SECONDS = 1.0
_checked = threading.local()


def _close_old_connections_before_job() -> None:
    if time.monotonic() - getattr(_checked, "at", -RECENT_CHECK_SECONDS) >= RECENT_CHECK_SECONDS:
        close_old_connections()


def _close_old_connections_after_job() -> None:
    close_old_connections()
    _checked.at = time.monotonic()


@dataclass
class Outcome:
    """How one attempt ended."""

    job: Job
    succeeded: bool
    duration: float
    result: Any = None
    error: BaseException | None = None
    error_info: dict[str, Any] | None = None
    permanent: bool = False  # no retry whatever the attempts left
    task: Task | None = None  # None when the job's task could not be found


class BadJob(Exception):
    """A claimed job that cannot be run as it is (reported as its failure, never retried)."""


def error_info(exc: BaseException, attempt: int, worker: str) -> dict[str, Any]:
    """The JSON-ready description of a failed attempt, with the full traceback."""
    kind = type(exc)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    return {
        "attempt": attempt,
        "type": name,
        "message": str(exc)[:10_000],
        "traceback": "".join(traceback.format_exception(exc))[-50_000:],
        "t": int(time.time() * 1000),
        "worker": worker,
    }


class JobRunner:
    """Prepares and runs jobs for one worker process."""

    def __init__(
        self,
        registry: TaskRegistry,
        app_context: Mapping[str, Any],
        log_sink: Callable[[Job, Any], None],
        child_enqueuer: Callable[..., str],
        worker_name: str,
    ) -> None:
        self.registry = registry
        self.app_context = app_context
        self.log_sink = log_sink
        self.child_enqueuer = child_enqueuer
        self.worker_name = worker_name

    def prepare(self, fields: dict[str, str]) -> tuple[Job, Task]:
        """The Job and Task of a claimed hash; raises BadJob when it cannot run."""
        job = Job.from_fields(fields, decode_data=False)
        job._log_sink = self.log_sink
        if not job.name:
            raise BadJob("the job record has no task name")
        try:
            task = self.registry.get(job.name)
        except TaskNotRegistered as exc:
            raise BadJob(f"{exc} (worker {self.worker_name})") from None
        try:
            job.data = serialization.decode(fields.get("data"))
        except (ValueError, RecursionError) as exc:
            raise BadJob(f"the job's data is not valid JSON: {exc}") from None
        return job, task

    def context_for(self, job: Job) -> JobContext:
        return JobContext(self.app_context, job, self.child_enqueuer)

    def failed_to_prepare(self, fields: dict[str, str], exc: BadJob) -> Outcome:
        job = Job.from_fields(fields)
        logger.error("job %s (%r) cannot run: %s", job.id, job.name, exc)
        return Outcome(
            job, False, 0.0, error=exc, error_info=error_info(exc, job.attempt, self.worker_name), permanent=True
        )

    def run_sync(self, fields: dict[str, str]) -> Outcome:
        """Run a sync handler in the calling thread (a worker thread)."""
        try:
            job, task = self.prepare(fields)
        except BadJob as exc:
            return self.failed_to_prepare(fields, exc)
        self._started(job, task)
        _close_old_connections_before_job()
        start = time.monotonic()
        try:
            result = task.func(job, self.context_for(job))
        except BaseException as exc:  # a handler must never take its worker down (SystemExit too)
            return self._failed(job, task, exc, time.monotonic() - start)
        finally:
            _close_old_connections_after_job()
        return Outcome(job, True, time.monotonic() - start, result=result, task=task)

    async def run_async(self, fields: dict[str, str]) -> Outcome:
        """Run an async handler on the worker's event loop."""
        try:
            job, task = self.prepare(fields)
        except BadJob as exc:
            return self.failed_to_prepare(fields, exc)
        self._started(job, task)
        start = time.monotonic()
        try:
            result = await task.func(job, self.context_for(job))
        except BaseException as exc:
            return self._failed(job, task, exc, time.monotonic() - start)
        return Outcome(job, True, time.monotonic() - start, result=result, task=task)

    def is_async(self, fields: dict[str, str]) -> bool:
        name = fields.get("name", "")
        return name in self.registry and self.registry.get(name).is_async

    def _started(self, job: Job, task: Task) -> None:
        # DEBUG, not INFO: at thousands of jobs a second, a second line per job costs more than the job.
        logger.debug("job %s %s started (attempt %d/%d)", job.id, job.name, job.attempt, job.max_attempts)
        signals.send(signals.job_started, sender=task, job=job)

    def _failed(self, job: Job, task: Task, exc: BaseException, duration: float) -> Outcome:
        info = error_info(exc, job.attempt, self.worker_name)
        return Outcome(job, False, duration, error=exc, error_info=info, task=task)


def error_json(outcome: Outcome) -> str:
    return json.dumps(outcome.error_info or {}, default=str)
