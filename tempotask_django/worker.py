"""The worker: claims jobs, runs them on threads (or an event loop) and records how they ended.

One Worker is one consumer in each of its queues' consumer groups. ``run_once()`` is a single
iteration (housekeeping, claim, dispatch, or block until work arrives); ``run()`` repeats it until
stopped. A separate finisher thread records finished attempts, batching them under load.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue as queue_module
import secrets
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import redis

from tempotask_django import serialization, signals
from tempotask_django.backoff import retry_delay_seconds
from tempotask_django.conf import Settings, get_settings
from tempotask_django.context import load_app_context
from tempotask_django.job import Job
from tempotask_django.registry import TaskRegistry, registry
from tempotask_django.runner import JobRunner, Outcome, error_json
from tempotask_django.slots import Slots
from tempotask_django.storage.connection import get_default_store
from tempotask_django.storage.store import ClaimResult, Finish, FinishOutcome, RedisStore

logger = logging.getLogger("tempotask")

# Longest single block on the doorbell, ms: bounds how long a stop request waits when idle.
IDLE_BLOCK_MS = 2000
# Finished attempts recorded in one round trip at most.
FINISH_BATCH = 100
# Consumers idle this long (and holding nothing) are deleted from a group, seconds.
CONSUMER_MAX_IDLE = 3600
# Errors talking to Redis: first retry delay and the cap, seconds.
BACKOFF_START, BACKOFF_CAP = 0.1, 5.0
# Cap of the finisher's retry delay, seconds: finished jobs hold their slots until recorded, so they
# are recorded soon after Redis is back (a refused connection costs nothing).
FINISH_RETRY_CAP = 1.0
# At most one log line per this many seconds while Redis keeps failing.
ERROR_LOG_INTERVAL = 30.0

REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)


@dataclass
class RunningJob:
    queue: str
    job_id: str
    entry_id: str
    started: float = field(default_factory=time.monotonic)
    finishing: bool = False  # handed to the finisher: its lease may be gone any moment, no news
    lost: bool = False  # another worker took it over (or Redis lost it): warned once, not renewed


class ErrorThrottle:
    """Logs the first error of a streak, then at most one summary line per interval."""

    def __init__(self, interval: float = ERROR_LOG_INTERVAL, cap: float = BACKOFF_CAP) -> None:
        self.interval = interval
        self.cap = cap
        self.streak = 0
        self.last_logged = 0.0
        self.delay = BACKOFF_START

    def failed(self, what: str, exc: BaseException) -> float:
        """Record a failure; returns how long to back off."""
        self.streak += 1
        now = time.monotonic()
        if self.streak == 1 or now - self.last_logged >= self.interval:
            logger.error("%s failed (%d in a row, retrying with backoff): %s", what, self.streak, exc)
            self.last_logged = now
        delay, self.delay = self.delay, min(self.cap, self.delay * 2)
        return delay

    def succeeded(self) -> None:
        if self.streak:
            logger.warning("Redis is reachable again after %d failed calls", self.streak)
        self.streak, self.delay = 0, BACKOFF_START


class AsyncLoopThread:
    """An event loop on its own thread, for async handlers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="tempotask-async", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


class Worker:
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
        limits = {q: self.settings.for_queue(q).concurrency if q in self.settings.queues else self.concurrency
                  for q in self.queues}  # fmt: skip
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
        self._executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix="tempotask-job")
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
            self._wait_for_work()
        return started

    def shutdown(self) -> bool:
        """Wait for running jobs (SHUTDOWN_TIMEOUT), record them, and leave the groups cleanly."""
        deadline = time.monotonic() + self.settings.shutdown_timeout
        while self.running_count and time.monotonic() < deadline:
            self._slot_freed.wait(timeout=0.1)
            self._slot_freed.clear()
        left = self.running_count
        self._done.put(None)
        self._finisher.join(timeout=10)
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._async is not None:
            self._async.stop()
        if left:
            logger.warning(
                "worker %s exits with %d job(s) still running after SHUTDOWN_TIMEOUT; another worker "
                "takes them over after STALLED_TIMEOUT", self.name, left,
            )  # fmt: skip
        self._leave()
        logger.info("worker %s stopped after %d jobs", self.name, self.jobs_done)
        return left == 0

    def _announce(self) -> None:
        logger.info(
            "worker %s started: queues %s, concurrency %d, redis %s",
            self.name, ", ".join(self.queues), self.concurrency, self.settings.safe_redis_url,
        )  # fmt: skip
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
            self._wake_ids[queue] = result.wake_id
            started += len(result.jobs)
            drained = drained and len(result.jobs) < count
            if started >= free:
                break
        return started, drained

    def _claim(self, queue: str, count: int) -> ClaimResult:
        """Claim ``count`` reserved slots' worth of jobs of ``queue`` and start them."""
        jobs: list[dict[str, str]] = []
        try:
            result = self.store.claim(queue, self.name, count)
            self._throttle.succeeded()  # Redis answered
            jobs = result.jobs
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
            self._executor.submit(self._run_sync, running, fields)

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

    def _wait_for_work(self) -> None:
        if self.burst and self.running_count == 0 and self._queues_idle():
            logger.info("worker %s: queues are idle, burst mode exits", self.name)
            self.request_stop()
            return
        timeout = min([IDLE_BLOCK_MS, *(due for due in self._next_due.values() if due >= 0)])
        timeout = min(timeout, int(self._seconds_to_next_chore() * 1000))
        if timeout > 0:
            self.store.wait_for_jobs(self._wake_ids, timeout)

    def _queues_idle(self) -> bool:
        """Nothing waiting, due or in progress in any of this worker's queues."""
        for queue in self.queues:
            stats = self.store.queue_stats(queue)
            if stats.waiting or stats.processing or self._next_due[queue] == 0:
                return False
        return True

    # -- finishing ----------------------------------------------------------------------------
    def _finish_loop(self) -> None:
        while True:
            item = self._done.get()
            if item is None:
                return
            batch = [item]
            last = False
            while len(batch) < FINISH_BATCH:
                try:
                    more = self._done.get_nowait()
                except queue_module.Empty:
                    break
                if more is None:
                    last = True
                    break
                batch.append(more)
            self._record(batch)
            if last:
                return

    def _record(self, batch: list[tuple[RunningJob, Outcome]]) -> None:
        """Record a batch of finished attempts and, in the same round trip, claim jobs for the slots it frees."""
        with self._lock:
            for running, _ in batch:
                running.finishing = True
        finishes = [self._safe_finish_for(running, outcome) for running, outcome in batch]
        for running, _ in batch:
            self._slots.finished(running.queue)
        queue, count = self._refill_target()
        claimed: ClaimResult | None = None
        try:
            results, claimed = self._send_finishes(finishes, queue, count)
            if claimed is not None and queue is not None:
                self._claimed(queue, claimed, count)  # new jobs start before the bookkeeping below
        finally:
            if queue is not None:
                self._slots.settle(queue, count, len(claimed.jobs) if claimed else 0)
        for (running, outcome), finish, result in zip(batch, finishes, results, strict=True):
            self._after_finish(running, outcome, finish, result)
        if self._slots.free() > 0 or self.stopping or (self.max_jobs is not None and not self.running_count):
            # Room left that this refill did not fill (the loop claims or waits), or --max-jobs
            # reached with nothing running (the loop stops).
            self._slot_freed.set()

    def _refill_target(self) -> tuple[str | None, int]:
        """The queue to refill from with the finish round trip, with its slots reserved; or (None, 0)."""
        if self.stopping or self._alone is not None or self._draining:
            return None, 0
        for queue in self.queues:
            if self._slots.free_in(queue) <= 0:
                continue
            # First listed first: if the first queue with room may be empty, let the loop decide.
            if not self._more_waiting[queue]:
                return None, 0
            return queue, self._slots.reserve(queue, self.concurrency)
        return None, 0

    def _send_finishes(
        self, finishes: list[Finish], queue: str | None, count: int
    ) -> tuple[list[FinishOutcome], ClaimResult | None]:
        throttle = ErrorThrottle(cap=FINISH_RETRY_CAP)
        while True:
            try:
                return self.store.finish_and_claim(self.name, finishes, queue, count)
            except REDIS_ERRORS as exc:
                # The jobs stay pending (leased to us); keep trying. If we never get through,
                # another worker takes them over after STALLED_TIMEOUT. The claim is not repeated.
                time.sleep(throttle.failed("recording finished jobs", exc))
                queue, count = None, 0
            except Exception:
                logger.exception("worker %s: could not record %d finished jobs", self.name, len(finishes))
                return [FinishOutcome(False, reason="recording failed")] * len(finishes), None

    def _safe_finish_for(self, running: RunningJob, outcome: Outcome) -> Finish:
        """The finish to record; a record too damaged to compute one fails the job (the finisher must live)."""
        try:
            return self._finish_for(running, outcome)
        except Exception as exc:
            logger.exception("worker %s: job %s: cannot record how it ended", self.name, running.job_id)
            error = {"attempt": outcome.job.attempt, "type": type(exc).__name__, "message": repr(exc)[:10_000]}
            return Finish(running.queue, running.entry_id, running.job_id, False, json.dumps(error), -1)

    def _finish_for(self, running: RunningJob, outcome: Outcome) -> Finish:
        job = outcome.job
        if outcome.succeeded:
            return Finish(
                running.queue, running.entry_id, running.job_id, True, serialization.encode_result(outcome.result)
            )
        delay_ms = -1
        if not outcome.permanent and job.attempt < job.max_attempts:
            delay = retry_delay_seconds(job.attempt, job.retry_delay, job.backoff, self.settings.max_retry_delay)
            delay_ms = int(delay * 1000)
        return Finish(running.queue, running.entry_id, running.job_id, False, error_json(outcome), delay_ms)

    def _after_finish(self, running: RunningJob, outcome: Outcome, finish: Finish, result: FinishOutcome) -> None:
        with self._lock:
            self._running.pop(running.entry_id, None)
            if self._alone == running.entry_id:
                self._alone = None
        self.jobs_done += 1
        job = outcome.job
        if not result.accepted:
            logger.warning("job %s %s: result discarded: %s", job.id, job.name, result.reason)
            return
        if outcome.succeeded:
            logger.info("job %s %s completed in %.3fs (attempt %d)", job.id, job.name, outcome.duration, job.attempt)
            signals.send(signals.job_completed, job=job, result=outcome.result, duration=outcome.duration)
            return
        will_retry = result.status != "failed"
        logger.log(
            logging.WARNING if will_retry else logging.ERROR,
            "job %s %s failed in %.3fs (attempt %d/%d): %s: %s%s", job.id, job.name, outcome.duration,
            job.attempt, job.max_attempts, type(outcome.error).__name__, outcome.error,
            f"; retry in {finish.retry_delay_ms / 1000:.1f}s" if will_retry else "",
        )  # fmt: skip
        signals.send(signals.job_failed, job=job, error=outcome.error, will_retry=will_retry, duration=outcome.duration)

    # -- housekeeping -------------------------------------------------------------------------
    def _chores(self) -> dict[str, tuple[float, Any]]:
        lease = self.settings.stalled_timeout
        return {
            "heartbeat": (max(0.2, lease / 3), self._heartbeat),
            "reclaim": (max(0.5, lease / 2), self._reclaim),
            "forget_consumers": (300.0, self._forget_idle_consumers),
        }

    def _do_chores(self) -> None:
        now = time.monotonic()
        for chore, (interval, action) in self._chores().items():
            if now >= self._chores_due.get(chore, 0):
                self._chores_due[chore] = now + interval
                action()

    def _seconds_to_next_chore(self) -> float:
        if not self._chores_due:
            return 0.0
        return max(0.0, min(self._chores_due.values()) - time.monotonic())

    def _heartbeat(self) -> None:
        """Renew the leases of running jobs and publish this worker's info."""
        self._renew_leases()
        self.store.register_worker(self.name, self.info(), ttl=max(3.0, self.settings.stalled_timeout))
        self._throttle.succeeded()  # Redis answered

    def _renew_leases(self) -> None:
        with self._lock:
            by_queue: dict[str, list[str]] = {}
            for running in self._running.values():
                if not running.lost:
                    by_queue.setdefault(running.queue, []).append(running.entry_id)
        for queue, entries in by_queue.items():
            for lost in self.store.renew(queue, self.name, entries):
                with self._lock:
                    job = self._running.get(lost)
                    if job is None or job.finishing:
                        continue  # finished meanwhile: not a loss
                    job.lost = True
                logger.warning(
                    "worker %s lost the lease of entry %s on %s (taken over, or Redis lost it); its result "
                    "will be discarded", self.name, lost, queue,
                )  # fmt: skip

    def info(self) -> dict[str, Any]:
        """What the admin shows about this worker."""
        host, pid, _ = ([*self.name.split(":"), "", "", ""])[:3]
        return {
            "host": host, "pid": pid, "queues": ",".join(self.queues), "concurrency": self.concurrency,
            "started": int(self.started_at * 1000), "jobs_done": self.jobs_done, "running": self.running_count,
        }  # fmt: skip

    def _reclaim(self) -> None:
        """Take over jobs of dead workers, as far as free slots allow.

        A suspect (a job taken over twice) is only taken when this worker runs nothing, and then
        runs alone; when one waits, the worker stops claiming until it runs nothing (draining).
        """
        suspects = 0
        if self.running_count and self._free_slots(reclaiming=True) > 0:
            self._renew_leases()  # after an outage our own running jobs look stalled too: not to us
        for queue in self.queues:
            cursor, budget_end = "0-0", time.monotonic() + 0.2
            while time.monotonic() < budget_end:
                if self.stopping or self._free_slots(reclaiming=True) <= 0:
                    return
                free = self._slots.reserve(queue, self.concurrency)
                if free <= 0:
                    break
                jobs: list[dict[str, str]] = []
                try:
                    result = self.store.reclaim(queue, self.name, free, cursor, idle=self.running_count == 0)
                    jobs = result.jobs
                    for fields in jobs:
                        logger.warning(
                            "job %s %s taken over from a stalled worker", fields.get("id"), fields.get("name")
                        )
                        if result.alone:
                            self._alone, self._draining = fields.get("entry", ""), False
                        self._start(queue, fields)
                finally:
                    self._slots.settle(queue, free, len(jobs))
                if result.poisoned:
                    logger.error("%d job(s) on %s failed as poison pills (MAX_DELIVERIES)", result.poisoned, queue)
                suspects += result.suspects
                cursor = result.cursor
                if cursor == "0-0" or result.alone:
                    break
        self._draining = suspects > 0 and self._alone is None

    def _forget_idle_consumers(self) -> None:
        for queue in self.queues:
            self.store.forget_consumers(queue, CONSUMER_MAX_IDLE * 1000)

    # -- what handlers call -------------------------------------------------------------------
    def _write_log(self, job: Job, message: Any) -> None:
        text = serialization.dumps(serialization.normalize(message, "message"))
        self.store.append_log(job.queue, job.id, text)

    @staticmethod
    def _enqueue_child(name: str, data: Any = None, **options: Any) -> str:
        from tempotask_django.api import add_job

        return add_job(name, data, **options)
