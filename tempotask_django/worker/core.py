"""The worker: claims jobs, runs them on threads (or an event loop) and records how they ended.

One Worker is one consumer in each of its queues' consumer groups. ``run_once()`` is a single
iteration (housekeeping, claim, dispatch, or block until work arrives); ``run()`` repeats it until
stopped. A separate finisher thread records finished attempts, batching them under load
(finishing.py); leases, heartbeats and take-overs are periodic chores (chores.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue as queue_module
import secrets
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from tempotask_django import serialization
from tempotask_django.conf import Settings, get_settings
from tempotask_django.context import load_app_context
from tempotask_django.job import Job
from tempotask_django.registry import TaskRegistry, registry
from tempotask_django.runner import JobRunner, Outcome
from tempotask_django.slots import Slots
from tempotask_django.storage.connection import get_default_store
from tempotask_django.storage.outage import REDIS_ERRORS, ErrorThrottle
from tempotask_django.storage.records import ClaimResult
from tempotask_django.storage.store import RedisStore
from tempotask_django.worker.chores import ChoresMixin
from tempotask_django.worker.finishing import FinishingMixin
from tempotask_django.worker.support import IDLE_BLOCK_MS, AsyncLoopThread, RunningJob
from tempotask_django.worker.threads import JobThreads

logger = logging.getLogger("tempotask")


class Worker(FinishingMixin, ChoresMixin):
    """Processes jobs of ``queues`` (first listed first) with ``concurrency`` jobs at once.

    Example (what ``manage.py runworkers`` does)::

        Worker(["default", "emails"], concurrency=4).run()
    """

    def __init__(
        self,
        queues: Sequence[str] | None = None,
        *,
        concurrency: int | None = None,
        burst: bool = False,
        max_jobs: int | None = None,
        store: RedisStore | None = None,
        settings: Settings | None = None,
        tasks: TaskRegistry = registry,
        app_context: Mapping[str, Any] | None = None,
        name: str | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.store = store or get_default_store()
        self.queues = list(queues or [self.settings.default_queue])
        self.concurrency = concurrency or max(self.settings.for_queue(q).concurrency for q in self.queues)
        self.burst = burst
        self.max_jobs = max_jobs
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        if app_context is None:
            app_context = load_app_context(self.settings.context)
        self.runner = JobRunner(tasks, app_context, self._write_log, self._enqueue_child, self.name)
        self.jobs_started = 0
        self.jobs_done = 0
        self.started_at = time.time()
        self._running: dict[str, RunningJob] = {}
        self._lock = threading.Lock()
        self._slot_freed = threading.Event()
        self._stopping = threading.Event()
        self._done: queue_module.SimpleQueue[tuple[RunningJob, Outcome] | None] = queue_module.SimpleQueue()
        limits = {
            q: self.settings.for_queue(q).concurrency if q in self.settings.queues else self.concurrency
            for q in self.queues
        }
        self._slots = Slots(self.concurrency, limits, max_jobs)
        self._wake_ids = dict.fromkeys(self.queues, "0-0")
        self._next_due = dict.fromkeys(self.queues, -1)
        # Per queue: did the last claim get every job it asked for (so more may be waiting)? The
        # finisher only refills from a queue that may have more; otherwise it wakes the loop.
        self._more_waiting = dict.fromkeys(self.queues, False)
        self._chores_due: dict[str, float] = {}
        # A suspect job (taken over twice) runs alone: its entry id, and whether one waits for us.
        self._alone: str | None = None
        self._draining = False
        self._throttle = ErrorThrottle()
        self._job_threads = JobThreads(self.concurrency, self._run_sync)
        self._async: AsyncLoopThread | None = None
        self._finisher = threading.Thread(target=self._finish_loop, name="tempotask-finisher", daemon=True)
        self._finisher.start()

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def request_stop(self) -> None:
        """Stop taking jobs; ``run()`` returns once running jobs finish (or SHUTDOWN_TIMEOUT passes)."""
        if not self._stopping.is_set():
            logger.info("worker %s stopping: no new jobs; waiting for %d running", self.name, self.running_count)
        self._stopping.set()
        self._slot_freed.set()

    @property
    def running_count(self) -> int:
        with self._lock:
            return len(self._running)

    def run(self) -> bool:
        """Process jobs until stopped (or, with ``burst``, until the queues are idle).

        Returns True when every running job finished before exiting.
        """
        self._announce()
        while not self.stopping:
            try:
                self.run_once()
            except REDIS_ERRORS as exc:
                self._stopping.wait(self._throttle.failed("talking to Redis", exc))
            except Exception:
                logger.exception("worker %s: unexpected error in the worker loop; continuing", self.name)
                self._stopping.wait(1.0)
        return self.shutdown()

    def run_once(self, block: bool = True) -> int:
        """One iteration: housekeeping, then claim and start jobs, or wait for work. Returns jobs started."""
        self._do_chores()
        if self._draining and not self.running_count and not self.stopping:
            self._reclaim()  # running nothing now: take the suspect that waits for such a worker
        self._slot_freed.clear()
        free = self._free_slots()
        if free <= 0:
            if block and not self.stopping:
                self._slot_freed.wait(timeout=self._seconds_to_next_chore())
            return 0
        started, drained = self._claim_and_start(free)
        # A claim that got fewer jobs than it asked for emptied its queue: wait for the doorbell
        # (any later enqueue rings it) instead of claiming again for nothing.
        if (started == 0 or drained) and block and not self.stopping:
            started += self._wait_for_work()
        return started

    def shutdown(self) -> bool:
        """Wait for running jobs (SHUTDOWN_TIMEOUT), renewing their leases; record them; leave the groups."""
        deadline = time.monotonic() + self.settings.shutdown_timeout
        while self.running_count and time.monotonic() < deadline:
            self._chores_while_stopping()  # keep the leases until the running jobs are recorded
            self._slot_freed.wait(timeout=0.1)
            self._slot_freed.clear()
        left = self.running_count
        self._done.put(None)
        self._finisher.join(timeout=10)
        self._job_threads.stop()
        if self._async is not None:
            self._async.stop()
        if left:
            logger.warning(
                "worker %s exits with %d job(s) still running after SHUTDOWN_TIMEOUT; another worker "
                "takes them over after STALLED_TIMEOUT",
                self.name,
                left,
            )
        self._leave()
        logger.info("worker %s stopped after %d jobs", self.name, self.jobs_done)
        return left == 0

    def _announce(self) -> None:
        logger.info(
            "worker %s started: queues %s, concurrency %d, redis %s",
            self.name,
            ", ".join(self.queues),
            self.concurrency,
            self.settings.safe_redis_url,
        )
        try:
            warning = self.store.eviction_warning()
        except REDIS_ERRORS as exc:
            warning = None
            self._throttle.failed("checking Redis", exc)
        if warning:
            logger.warning(warning)

    def _leave(self) -> None:
        try:
            self.store.unregister_worker(self.name)
            for queue in self.queues:
                self.store.forget_consumers(queue, 0, only=self.name)
        except REDIS_ERRORS as exc:
            logger.warning("worker %s could not unregister cleanly: %s", self.name, exc)

    # -- claiming -----------------------------------------------------------------------------
    def _free_slots(self, reclaiming: bool = False) -> int:
        """Jobs this worker can start now: none beside a suspect, and none while it drains to take one
        (until it runs nothing; then only the reclaim that takes the suspect)."""
        if self._alone is not None or (self._draining and (not reclaiming or self.running_count)):
            return 0
        free = self._slots.free()
        if self.max_jobs is not None and free <= 0 and self.running_count == 0:
            self.request_stop()
        return free

    def _claim_and_start(self, free: int) -> tuple[int, bool]:
        """Claim up to ``free`` jobs, first listed queue first. Returns (started, every queue drained)."""
        started, drained = 0, True
        for queue in self.queues:
            count = self._slots.reserve(queue, free - started)
            if count <= 0:
                continue
            result = self._claim(queue, count)
            started += len(result.jobs)
            drained = drained and len(result.jobs) < count
            if started >= free:
                break
        return started, drained

    def _claim(self, queue: str, count: int, wait_ms: int = 0) -> ClaimResult:
        """Claim ``count`` reserved slots' worth of jobs of ``queue`` and start them; with ``wait_ms``,
        after waiting that long at most for the doorbell, in the same round trip."""
        jobs: list[dict[str, str]] = []
        try:
            if wait_ms > 0:
                result = self.store.wait_then_claim(self._wake_ids, wait_ms, queue, self.name, count)
            else:
                result = self.store.claim(queue, self.name, count)
            self._throttle.succeeded()  # Redis answered
            jobs = result.jobs
            self._wake_ids[queue] = result.wake_id
            self._claimed(queue, result, count)
        finally:
            self._slots.settle(queue, count, len(jobs))
        return result

    def _claimed(self, queue: str, result: ClaimResult, count: int) -> None:
        self._next_due[queue] = result.next_due_ms
        self._more_waiting[queue] = len(result.jobs) >= count and not result.paused
        for fields in result.jobs:
            self._start(queue, fields)

    def _start(self, queue: str, fields: dict[str, str]) -> None:
        """Run a claimed job (its slot is already reserved)."""
        running = RunningJob(queue, fields.get("id", ""), fields.get("entry", ""))
        with self._lock:
            self._running[running.entry_id] = running
        self.jobs_started += 1
        if self.runner.is_async(fields):
            if self._async is None:
                self._async = AsyncLoopThread()
            future = asyncio.run_coroutine_threadsafe(self.runner.run_async(fields), self._async.loop)
            future.add_done_callback(lambda f: self._done.put((running, self._outcome_of(f, fields))))
        else:
            self._job_threads.submit(running, fields)

    def _run_sync(self, running: RunningJob, fields: dict[str, str]) -> None:
        try:
            outcome = self.runner.run_sync(fields)
        except BaseException as exc:  # every started job must reach the finisher, or its slot leaks
            outcome = self._broken(fields, exc)
        self._done.put((running, outcome))

    def _outcome_of(self, future: Any, fields: dict[str, str]) -> Outcome:
        try:
            return future.result()
        except BaseException as exc:
            return self._broken(fields, exc)

    def _broken(self, fields: dict[str, str], exc: BaseException) -> Outcome:
        """The outcome of a job the runner could not even describe (a damaged record): failed for good."""
        logger.exception("worker %s: job %s could not be run", self.name, fields.get("id"))
        job = Job(id=fields.get("id", ""), name=fields.get("name", ""), queue=fields.get("queue", ""))
        info = {"attempt": 0, "type": type(exc).__name__, "message": repr(exc)[:10_000], "traceback": ""}
        return Outcome(job, False, 0.0, error=exc, error_info=info, permanent=True)

    def _wait_for_work(self) -> int:
        """Block until a job is enqueued (or a chore or a delayed job is due); returns jobs started.

        The wait and a claim of the first queue with room go in one round trip (see
        ``RedisStore.wait_then_claim``): the job that ends the wait usually starts at once. Jobs of
        the other queues are claimed by the next iteration.
        """
        if self.burst and self.running_count == 0 and self._queues_idle():
            logger.info("worker %s: queues are idle, burst mode exits", self.name)
            self.request_stop()
            return 0
        timeout = min([IDLE_BLOCK_MS, *(due for due in self._next_due.values() if due >= 0)])
        timeout = min(timeout, int(self._seconds_to_next_chore() * 1000))
        if timeout <= 0:
            return 0
        queue = next((q for q in self.queues if self._slots.free_in(q) > 0), None)
        count = self._slots.reserve(queue, self._free_slots()) if queue is not None else 0
        if queue is None or count <= 0:
            self.store.wait_for_jobs(self._wake_ids, timeout)
            return 0
        return len(self._claim(queue, count, wait_ms=timeout).jobs)

    def _queues_idle(self) -> bool:
        """Nothing waiting, due or in progress in any of this worker's queues."""
        for queue in self.queues:
            stats = self.store.inspect.queue_stats(queue)
            if stats.waiting or stats.processing or self._next_due[queue] == 0:
                return False
        return True

    # -- what handlers call -------------------------------------------------------------------
    def _write_log(self, job: Job, message: Any) -> None:
        text = serialization.dumps(serialization.normalize(message, "message"))
        self.store.append_log(job.queue, job.id, text)

    @staticmethod
    def _enqueue_child(name: str, data: Any = None, **options: Any) -> str:
        from tempotask_django.api import add_job

        return add_job(name, data, **options)
