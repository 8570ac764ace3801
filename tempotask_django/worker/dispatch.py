"""Handing claimed jobs to where they run: a job thread for a sync handler, the event loop for an
async one. Every started job reaches the finisher's inbox with its outcome, whatever happens, or
its slot would never be freed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Future

from tempotask_django.job import Job, error_record
from tempotask_django.worker.control import JobControl, timeout_of
from tempotask_django.worker.outcome import RUN_WAITING, FinishedJobs, Outcome
from tempotask_django.worker.runner import JobRunner
from tempotask_django.worker.running import RunningJob, RunningJobs
from tempotask_django.worker.threads import AsyncLoopThread, InlineJobs, JobThreads

logger = logging.getLogger("tempotask")


class Dispatcher:
    """Starts claimed jobs (their slots already reserved) on ``concurrency`` threads or the event loop.

    Threads start with the first job of their kind; ``stop()`` lets them exit. With ``prefetch``,
    up to that many more jobs may be handed over than run at once: they wait for a thread (or, for
    async handlers, for one of ``concurrency`` places on the event loop).
    """

    def __init__(
        self,
        runner: JobRunner,
        running: RunningJobs,
        finished: FinishedJobs,
        concurrency: int,
        worker_name: str,
        *,
        prefetch: int = 0,
        inline: bool = False,
    ) -> None:
        """``inline``: sync jobs run on the finisher's thread (``run_waiting``), not on job threads."""
        self.runner = runner
        self.running = running
        self.finished = finished
        self.worker_name = worker_name
        self.started = 0
        # Where an async job's outcome goes: the finisher's inbox, or Finisher.accept when inline.
        self.deliver: Callable[[tuple[RunningJob, Outcome]], None] = finished.put
        self._job_threads: JobThreads = (
            InlineJobs(self._outcome_sync, lambda: finished.put(RUN_WAITING))
            if inline
            else JobThreads(concurrency, self._run_sync)
        )
        self._async_loop = AsyncLoopThread(limit=concurrency if prefetch else None)

    def start(self, queue: str, fields: dict[str, str], *, alone: bool = False) -> None:
        """Run a claimed job; ``alone`` when it is a suspect that runs with nothing beside it."""
        # A cancel made before this claim (the job was taken over or re-queued since) is in the record.
        control = JobControl(timeout_of(fields.get("timeout")), cancel_requested=bool(fields.get("cancel_requested")))
        running = RunningJob(queue, fields.get("id", ""), fields.get("entry", ""), control=control)
        self.running.add(running, alone=alone)
        self.started += 1
        if self.runner.is_async(fields):
            coroutine = self.runner.run_async(fields, control)
            if self._async_loop.limited:  # a prefetch: only ``concurrency`` handlers at once
                coroutine = self._async_loop.run_limited(coroutine)
            future = asyncio.run_coroutine_threadsafe(coroutine, self._async_loop.loop())
            future.add_done_callback(lambda f: self.deliver((running, self._outcome_of(f, fields))))
        else:
            self._job_threads.submit(running, fields)

    def run_waiting(self) -> tuple[RunningJob, Outcome] | None:
        """Run the next sync job waiting, on this thread (``inline`` only), and return how it
        ended; None when none waits (given back meanwhile)."""
        return self._job_threads.run_next() if isinstance(self._job_threads, InlineJobs) else None

    def backlog(self) -> int:
        """Sync jobs handed over that wait for a thread (prefetched)."""
        return self._job_threads.backlog()

    def when_backlog_empties(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (on a job thread) each time a thread takes the last sync job waiting."""
        self._job_threads.on_empty = callback

    def take_unstarted(self) -> list[RunningJob]:
        """Take back the sync jobs that wait for a thread: none will run them."""
        return [args[0] for args in self._job_threads.take_unstarted()]

    def stop(self, wait: bool = True) -> None:
        """Let the job threads and the event loop exit once their jobs finish (``wait``: for the loop)."""
        self._job_threads.stop()
        self._async_loop.stop(wait)

    def _run_sync(self, running: RunningJob, fields: dict[str, str]) -> None:
        self.finished.put(self._outcome_sync(running, fields))

    def _outcome_sync(self, running: RunningJob, fields: dict[str, str]) -> tuple[RunningJob, Outcome]:
        try:
            outcome = self.runner.run_sync(fields, running.control)
        except BaseException as exc:  # every started job must reach the finisher, or its slot leaks
            outcome = self._broken(fields, exc)
        return running, outcome

    def _outcome_of(self, future: Future[Outcome], fields: dict[str, str]) -> Outcome:
        try:
            return future.result()
        except BaseException as exc:
            return self._broken(fields, exc)

    def _broken(self, fields: dict[str, str], exc: BaseException) -> Outcome:
        """The outcome of a job the runner could not even describe (a damaged record): failed for good."""
        logger.exception("worker %s: job %s could not be run", self.worker_name, fields.get("id"))
        job = Job(id=fields.get("id", ""), name=fields.get("name", ""), queue=fields.get("queue", ""))
        return Outcome(job, False, 0.0, error=exc, error_info=error_record(exc, 0, self.worker_name), permanent=True)
