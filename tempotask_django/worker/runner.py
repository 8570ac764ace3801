"""Running one claimed job: build ``job`` and ``ctx``, call the handler, describe the outcome.

Nothing here touches the worker's bookkeeping; the worker turns an Outcome into a finish.
Input the handler cannot be given (unknown task, unreadable data) is a permanent failure with
a message that says what was wrong; it never raises out of ``run_job``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from django.db import close_old_connections

from tempotask_django import serialization, signals, tracing
from tempotask_django.decorators import Task
from tempotask_django.exceptions import JobCancelled, TaskNotRegistered
from tempotask_django.job import Job, error_record
from tempotask_django.registry import TaskRegistry
from tempotask_django.worker.context import JobContext
from tempotask_django.worker.control import JobControl
from tempotask_django.worker.outcome import Outcome
from tempotask_django.worker.progress import ProgressWriter

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


class BadJob(Exception):
    """A claimed job that cannot be run as it is (reported as its failure, never retried)."""


class JobRunner:
    """Prepares and runs jobs for one worker process.

    ``closes_connections``: close the thread's failed or old database connections around each sync
    job, as Django does around a request. Off when jobs run in their caller's thread (worker/inprocess.py):
    the caller owns its connections, and closing one inside its transaction (a test's) would break it.
    """

    closes_connections = True

    def __init__(
        self,
        registry: TaskRegistry,
        app_context: Mapping[str, Any],
        log_sink: Callable[[Job, Any], None],
        child_enqueuer: Callable[..., str],
        worker_name: str,
        progress: ProgressWriter | None = None,
    ) -> None:
        self.registry = registry
        self.app_context = app_context
        self.log_sink = log_sink
        self.child_enqueuer = child_enqueuer
        self.worker_name = worker_name
        self.progress = progress

    def prepare(self, fields: dict[str, str]) -> tuple[Job, Task]:
        """The Job and Task of a claimed hash; raises BadJob when it cannot run."""
        job = Job.from_fields(fields, decode_data=False)
        job._log_sink = self.log_sink
        if self.progress is not None:
            job._progress_sink = self.progress.report
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
            job, False, 0.0, error=exc, error_info=error_record(exc, job.attempt, self.worker_name), permanent=True
        )

    def run_sync(self, fields: dict[str, str], control: JobControl | None = None) -> Outcome:
        """Run a sync handler in the calling thread (a worker thread); ``control`` stops it at its
        time limit or on a cancel (control.py)."""
        try:
            job, task = self.prepare(fields)
        except BadJob as exc:
            return self.failed_to_prepare(fields, exc)
        if control is not None:
            control.attach(job, task)
        if control is not None and control.should_not_start():
            return self._cancelled_before_start(job, task)
        with tracing.running(job, fields.get("trace")) as span:
            self._started(job, task)
            if self.closes_connections:
                _close_old_connections_before_job()
            start = time.monotonic()
            try:
                try:
                    if control is not None:
                        control.enter_thread()
                    result = task.func(job, self.context_for(job))
                finally:
                    if control is not None:
                        control.leave()
            except BaseException as exc:  # a handler must never take its worker down (SystemExit too)
                if control is not None:
                    control.leave()  # the stop may have landed in the finally above, before leave() ran
                span.failed(exc)
                return self._failed(job, task, exc, time.monotonic() - start, control)
            finally:
                self._flush_progress(job)
                if self.closes_connections:
                    _close_old_connections_after_job()
        return Outcome(job, True, time.monotonic() - start, result=result, task=task)

    async def run_async(self, fields: dict[str, str], control: JobControl | None = None) -> Outcome:
        """Run an async handler on the worker's event loop (stopped by cancelling its task)."""
        try:
            job, task = self.prepare(fields)
        except BadJob as exc:
            return self.failed_to_prepare(fields, exc)
        if control is not None:
            control.attach(job, task)
        if control is not None and control.should_not_start():
            return self._cancelled_before_start(job, task)
        with tracing.running(job, fields.get("trace")) as span:
            self._started(job, task)
            start = time.monotonic()
            try:
                if control is not None:
                    control.enter_task(asyncio.current_task(), asyncio.get_running_loop())
                result = await task.func(job, self.context_for(job))
            except BaseException as exc:
                if control is not None:
                    control.leave()
                span.failed(exc)
                return self._failed(job, task, exc, time.monotonic() - start, control)
            finally:
                self._flush_progress(job)
            if control is not None:
                control.leave()
        return Outcome(job, True, time.monotonic() - start, result=result, task=task)

    def _flush_progress(self, job: Job) -> None:
        """Write the progress the handler reported last, before its outcome is recorded."""
        if self.progress is not None:
            self.progress.flush(job)

    def is_async(self, fields: dict[str, str]) -> bool:
        name = fields.get("name", "")
        return name in self.registry and self.registry.get(name).is_async

    def _started(self, job: Job, task: Task) -> None:
        # DEBUG, not INFO: at thousands of jobs a second, a second line per job costs more than the job.
        logger.debug("job %s %s started (attempt %d/%d)", job.id, job.name, job.attempt, job.max_attempts)
        signals.send(signals.job_started, sender=task, job=job)

    def _failed(
        self, job: Job, task: Task, exc: BaseException, duration: float, control: JobControl | None = None
    ) -> Outcome:
        cancelled = False
        if control is not None:
            exc = control.error_for(exc)
            cancelled = control.ended_cancelled
        info = error_record(exc, job.attempt, self.worker_name)
        return Outcome(job, False, duration, error=exc, error_info=info, task=task, cancelled=cancelled)

    def _cancelled_before_start(self, job: Job, task: Task) -> Outcome:
        """A job cancelled after its worker claimed it and before its handler was called: it never runs."""
        exc = JobCancelled("the job was cancelled before it started")
        info = error_record(exc, job.attempt, self.worker_name)
        return Outcome(job, False, 0.0, error=exc, error_info=info, task=task, cancelled=True)
