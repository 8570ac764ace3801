"""Recording finished attempts: the finisher thread batches them and refills the slots they free."""

from __future__ import annotations

import logging
import queue as queue_module
import threading
import time
from collections.abc import Callable

from tempotask_django import serialization, signals
from tempotask_django.conf import Settings
from tempotask_django.job import error_record
from tempotask_django.storage.outage import REDIS_ERRORS, ErrorThrottle
from tempotask_django.storage.records import ClaimResult, Finish, FinishOutcome
from tempotask_django.storage.store import RedisStore
from tempotask_django.validation import MAX_SECONDS
from tempotask_django.worker.backoff import retry_delay_seconds
from tempotask_django.worker.claimer import Claimer
from tempotask_django.worker.outcome import (
    RUN_WAITING,
    FinishedJobs,
    Outcome,
    RunWaiting,
    error_json,
    not_retried_json,
)
from tempotask_django.worker.running import RunningJob, RunningJobs
from tempotask_django.worker.slots import Slots

logger = logging.getLogger("tempotask")

# Finished attempts recorded in one round trip at most.
FINISH_BATCH = 100
# A worker that prefetches records a batch once no job is left waiting for a thread, not at each
# outcome: its batches grow towards the prefetch (fewer, larger round trips, and fewer thread
# hand-offs) while its threads stay busy. It waits this long at most per batch, seconds, asleep:
# the job threads wake it when they take the last job waiting, not at each outcome.
PREFETCH_GATHER_SECONDS = 0.002
# Cap of the finisher's retry delay, seconds: finished jobs hold their slots until recorded, so they
# are recorded soon after Redis is back (a refused connection costs nothing).
FINISH_RETRY_CAP = 1.0


class Finisher:
    """Takes (job, outcome) pairs from ``finished`` and records them, on its own thread.

    Each batch's round trip also claims jobs for the slots it frees (``claimer`` starts them), and
    ``wakeup`` is set when the worker loop has something to do: room left, or a stop to finish.
    """

    def __init__(
        self,
        store: RedisStore,
        settings: Settings,
        worker_name: str,
        queues: list[str],
        concurrency: int,
        max_jobs: int | None,
        running: RunningJobs,
        slots: Slots,
        claimer: Claimer,
        finished: FinishedJobs,
        stopping: threading.Event,
        wakeup: threading.Event,
        backlog: Callable[[], int] | None = None,
        run_waiting: Callable[[], tuple[RunningJob, Outcome] | None] | None = None,
    ) -> None:
        """``concurrency``: the most jobs one refill claims (the worker's slots, prefetch included);
        ``backlog``: how many claimed jobs wait for a thread, for a worker that prefetches;
        ``run_waiting``: runs the next job waiting on this thread, for a worker that runs its jobs
        inline (one at a time): see ``_loop_inline``."""
        self.store = store
        self.settings = settings
        self.worker_name = worker_name
        self.queues = queues
        self.concurrency = concurrency
        self.max_jobs = max_jobs
        self.running = running
        self.slots = slots
        self.claimer = claimer
        self.finished = finished
        self.stopping = stopping
        self.wakeup = wakeup
        self.backlog = backlog
        self.jobs_done = 0
        self._backlog_emptied = threading.Event()
        self.run_waiting = run_waiting
        # Inline: the outcomes gathered and not yet recorded, since when (monotonic), the lock that
        # makes one record at a time (this thread's or the late recorder's), and the late recorder.
        self._pending: list[tuple[RunningJob, Outcome]] = []
        self._pending_since = 0.0
        self._pending_lock = threading.Lock()
        self._recording = threading.Lock()
        self._late = LateRecorder(self._record_pending) if run_waiting is not None else None
        self._running_inline = False  # this thread runs a job now
        loop = self._loop_inline if run_waiting is not None else self._loop
        self._thread = threading.Thread(target=loop, name="tempotask-finisher", daemon=True)

    # -- the thread ----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the finisher thread (once)."""
        if self._thread.ident is None:
            self._thread.start()
            if self._late is not None:
                self._late.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def backlog_emptied(self) -> None:
        """The last job waiting for a thread was taken: record the batch gathered so far now."""
        self._backlog_emptied.set()

    def stop(self, timeout: float = 10) -> None:
        """Record what is left in the inbox, then let the thread exit (waits ``timeout`` at most).

        Inline, a job still running on the thread (past SHUTDOWN_TIMEOUT, or abandoned by the hard
        stop) is not waited for, and its lease stays for a take-over, as a job thread's would. The
        outcomes gathered before it are recorded by the late recorder (left running, a daemon),
        waited for ``timeout`` at most: the caller's own retries while Redis refuses would never
        end, and the hard stop gives back what is still running once this returns."""
        self.finished.put(None)
        if self._thread.ident is not None and self._running_inline and self._late is not None:
            with self._pending_lock:
                since = self._pending_since if self._pending else None
            if since is not None:
                self._late.arm(time.monotonic(), since)  # now
                self._wait_for_pending(time.monotonic() + timeout)
            return
        if self._thread.ident is not None:
            self._thread.join(timeout=timeout)
        if self._late is not None:
            self._late.stop()

    def _wait_for_pending(self, deadline: float) -> None:
        """Wait until the outcomes gathered are recorded (taken, and their round trip over), or ``deadline``."""
        while self._pending and time.monotonic() < deadline:
            time.sleep(0.005)
        if self._recording.acquire(timeout=max(0.0, deadline - time.monotonic())):
            self._recording.release()

    def _loop(self) -> None:
        while True:
            item = self.finished.get()
            if item is None:
                return
            assert not isinstance(item, RunWaiting)  # only an inline worker's inbox holds them
            batch = [item]
            last = False
            deadline = time.monotonic() + PREFETCH_GATHER_SECONDS
            while len(batch) < FINISH_BATCH:
                try:
                    more = self._next_outcome(deadline)
                except queue_module.Empty:
                    break
                if more is None:
                    last = True
                    break
                assert not isinstance(more, RunWaiting)
                batch.append(more)
            self.record(batch)
            if last:
                return

    def _next_outcome(self, deadline: float) -> tuple[RunningJob, Outcome] | RunWaiting | None:
        """The next item of the inbox; waits for more only as ``_gather_wait`` says (raises Empty)."""
        try:
            return self.finished.get_nowait()
        except queue_module.Empty:
            wait = self._gather_wait(deadline)
            if wait <= 0:
                raise
            # Asleep until the backlog empties or the deadline passes: an outcome put meanwhile
            # wakes no one (waiting on the inbox itself would cost a thread hand-off per job).
            self._backlog_emptied.clear()
            if self.backlog is not None and self.backlog() > 0:
                self._backlog_emptied.wait(wait)
            return self.finished.get_nowait()

    def _gather_wait(self, deadline: float) -> float:
        """Seconds to wait for more outcomes before recording the batch: while prefetched jobs wait
        for a thread, more outcomes come soon and the threads have work meanwhile; else none."""
        if self.backlog is None or self.stopping.is_set() or self.backlog() <= 0:
            return 0.0
        return max(0.0, deadline - time.monotonic())

    # -- inline: this thread runs the jobs too ----------------------------------------------------
    def _loop_inline(self) -> None:
        """A worker of one job at a time runs each sync job here, as soon as it is claimed, and
        records the outcomes gathered once no job waits (or FINISH_BATCH of them, or a job starts
        PREFETCH_GATHER_SECONDS after the first): no thread hand-off per job. A batch gathered
        before a job that runs longer is recorded at its deadline by the late recorder, so a long
        job never holds back the outcomes of the short ones before it."""
        assert self.run_waiting is not None and self._late is not None
        while True:
            try:
                item = self.finished.get_nowait() if self._pending else self.finished.get()
            except queue_module.Empty:  # nothing waits to run: record what was gathered
                self._record_pending()
                continue
            if item is None:
                self._record_pending()
                return
            if isinstance(item, RunWaiting):
                with self._pending_lock:
                    since = self._pending_since if self._pending else None
                if since is not None and time.monotonic() >= since + PREFETCH_GATHER_SECONDS:
                    self._record_pending()
                elif since is not None:
                    self._late.arm(since + PREFETCH_GATHER_SECONDS, since)
                self._running_inline = True
                try:
                    ended = self.run_waiting()
                finally:
                    self._running_inline = False
                self._late.disarm()
                if ended is None:  # given back before its turn (a stopping worker)
                    continue
                item = ended
            with self._pending_lock:
                if not self._pending:
                    self._pending_since = time.monotonic()
                self._pending.append(item)
                full = len(self._pending) >= FINISH_BATCH
            if full:
                self._record_pending()

    def accept(self, ended: tuple[RunningJob, Outcome]) -> None:
        """Inline: an outcome from another thread (an async job's), added to the batch gathered.
        This thread may be running a job: the late recorder records it by its deadline then."""
        assert self._late is not None
        with self._pending_lock:
            if not self._pending:
                self._pending_since = time.monotonic()
            self._pending.append(ended)
            since = self._pending_since
        self._late.arm(since + PREFETCH_GATHER_SECONDS, since)
        self.finished.put(RUN_WAITING)  # wakes this thread if it waits for work: it records the batch

    def _record_pending(self, gathered_since: float | None = None) -> None:
        """Record the outcomes gathered; with ``gathered_since`` (the late recorder), only the
        batch begun then or before (a batch begun later is not due yet)."""
        with self._recording:
            with self._pending_lock:
                batch = self._pending
                if not batch or (gathered_since is not None and self._pending_since > gathered_since):
                    return
                self._pending = []
            self.record(batch)

    # -- one batch -----------------------------------------------------------------------------
    def record(self, batch: list[tuple[RunningJob, Outcome]]) -> None:
        """Record a batch of finished attempts and, in the same round trip, claim jobs for the slots it frees."""
        self.running.finishing([running for running, _ in batch])
        finishes = [self._safe_finish_for(running, outcome) for running, outcome in batch]
        for running, _ in batch:
            self.slots.finished(running.queue)
        queue, count = self._refill_target()
        claimed: ClaimResult | None = None
        try:
            results, claimed = self._send_finishes(finishes, queue, count)
            if claimed is not None and queue is not None:
                self.claimer.claimed(queue, claimed, count)  # new jobs start before the bookkeeping below
        finally:
            if queue is not None:
                self.slots.settle(queue, count, len(claimed.jobs) if claimed else 0)
        for (running, outcome), finish, result in zip(batch, finishes, results, strict=True):
            self.after_finish(running, outcome, finish, result)
        if self.slots.free() > 0 or self.stopping.is_set() or (self.max_jobs is not None and not len(self.running)):
            # Room left that this refill did not fill (the loop claims or waits), or --max-jobs
            # reached with nothing running (the loop stops).
            self.wakeup.set()

    def _refill_target(self) -> tuple[str | None, int]:
        """The queue to refill from with the finish round trip, with its slots reserved; or (None, 0)."""
        if self.stopping.is_set() or not self.running.may_refill():
            return None, 0
        for group in self.claimer.order():
            if self.slots.free_in(group[0]) <= 0:  # a group's partitions share their queue's slots
                continue
            # First listed first: if the first queue with room may be empty, let the loop decide. The
            # partitions of one queue rank alike: any of them that may have more will do.
            queue = next((queue for queue in group if self.claimer.may_have_more(queue)), None)
            if queue is None:
                return None, 0
            return queue, self.slots.reserve(queue, self.concurrency)
        return None, 0

    def _send_finishes(
        self, finishes: list[Finish], queue: str | None, count: int
    ) -> tuple[list[FinishOutcome], ClaimResult | None]:
        throttle = ErrorThrottle(cap=FINISH_RETRY_CAP)
        while True:
            try:
                return self.store.finish_and_claim(self.worker_name, finishes, queue, count)
            except REDIS_ERRORS as exc:
                # The jobs stay pending (leased to us); keep trying. If we never get through,
                # another worker takes them over after STALLED_TIMEOUT. The same calls repeated
                # are answered by their first run if it ran (storage/replies.py): the finishes are
                # recorded once, and the claim's batch comes to us instead of being leased to nobody.
                time.sleep(throttle.failed("recording finished jobs", exc))
            except Exception:
                logger.exception("worker %s: could not record %d finished jobs", self.worker_name, len(finishes))
                return [FinishOutcome(False, reason="recording failed")] * len(finishes), None

    def _safe_finish_for(self, running: RunningJob, outcome: Outcome) -> Finish:
        """The finish to record; a record too damaged to compute one fails the job (the finisher must live)."""
        try:
            return self.finish_for(running, outcome)
        except Exception as exc:
            logger.exception("worker %s: job %s: cannot record how it ended", self.worker_name, running.job_id)
            error = error_json(error_record(exc, outcome.job.attempt, self.worker_name))
            return Finish(running.queue, running.entry_id, running.job_id, False, error, -1, outcome.task is not None)

    def finish_for(self, running: RunningJob, outcome: Outcome) -> Finish:
        """What to record for one attempt: its result, or its error and when to retry (-1: never)."""
        job = outcome.job
        if outcome.succeeded:
            return Finish(
                running.queue, running.entry_id, running.job_id, True, serialization.encode_result(outcome.result)
            )
        delay_ms = -1
        error = error_json(outcome.error_info)
        if outcome.cancelled:
            return Finish(
                running.queue, running.entry_id, running.job_id, False, error, -1, outcome.task is not None, True
            )
        if not outcome.permanent and job.attempt < job.max_attempts:
            delay = retry_delay_seconds(job.attempt, job.retry_delay, job.backoff, self.settings.max_retry_delay)
            if 0 <= delay <= MAX_SECONDS:
                delay_ms = int(delay * 1000)
            else:  # only a record damaged by another program holds such a delay: fail for good, saying so
                error = not_retried_json(outcome, f"retry_delay {job.retry_delay!r} in its record is out of range")
        return Finish(running.queue, running.entry_id, running.job_id, False, error, delay_ms, outcome.task is not None)

    def after_finish(self, running: RunningJob, outcome: Outcome, finish: Finish, result: FinishOutcome) -> None:
        """A recorded attempt: the job no longer runs; log it and send its signal."""
        self.running.remove(running)
        self.jobs_done += 1
        job = outcome.job
        if not result.accepted:
            logger.warning("job %s %s: result discarded: %s", job.id, job.name, result.reason)
            return
        if outcome.succeeded:
            logger.info("job %s %s completed in %.3fs (attempt %d)", job.id, job.name, outcome.duration, job.attempt)
            signals.send(
                signals.job_completed, sender=outcome.task, job=job, result=outcome.result, duration=outcome.duration
            )
            return
        if result.status == "cancelled":
            logger.info("job %s %s cancelled after %.3fs (attempt %d)", job.id, job.name, outcome.duration, job.attempt)
            signals.send(
                signals.job_cancelled, sender=outcome.task, job=job, error=outcome.error, duration=outcome.duration
            )
            return
        will_retry = result.status != "failed"
        logger.log(
            logging.WARNING if will_retry else logging.ERROR,
            "job %s %s failed in %.3fs (attempt %d/%d): %s: %s%s",
            job.id,
            job.name,
            outcome.duration,
            job.attempt,
            job.max_attempts,
            type(outcome.error).__name__,
            outcome.error,
            f"; retry in {finish.retry_delay_ms / 1000:.1f}s" if will_retry else "",
            # The traceback and the job's fields, for error trackers and structured log handlers.
            exc_info=outcome.error,
            extra={"job_id": job.id, "task": job.name, "queue": running.queue, "attempt": job.attempt},
        )
        signals.send(
            signals.job_failed,
            sender=outcome.task,
            job=job,
            error=outcome.error,
            will_retry=will_retry,
            duration=outcome.duration,
        )


class LateRecorder:
    """A thread that calls ``record(gathered_since)`` once ``due`` (monotonic) passes, unless
    disarmed before: it records an inline finisher's batch (begun at ``gathered_since``) while that
    finisher's thread runs a job."""

    def __init__(self, record: Callable[[float], None]) -> None:
        self._record = record
        self._due: float | None = None
        self._since = 0.0
        # What its thread sleeps until (inf: no deadline, None: awake): an earlier arm wakes it.
        self._asleep_until: float | None = None
        self._stopping = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name="tempotask-late-recorder", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def arm(self, due: float, gathered_since: float) -> None:
        with self._changed:
            self._due, self._since = due, gathered_since
            if self._asleep_until is not None and due < self._asleep_until:
                self._changed.notify()  # else it wakes by its own deadline, and sees this one

    def disarm(self) -> None:
        with self._changed:
            self._due = None

    def stop(self) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify()

    def _loop(self) -> None:
        with self._changed:
            while not self._stopping:
                if self._due is None:
                    self._sleep_until(float("inf"))
                    continue
                if self._due > time.monotonic():
                    self._sleep_until(self._due)
                    continue
                since, self._due = self._since, None
                self._changed.release()
                try:
                    self._record(since)
                except Exception:
                    logger.exception("the late recorder could not record a batch")
                finally:
                    self._changed.acquire()

    def _sleep_until(self, moment: float) -> None:
        """Wait on the condition (its lock held) until ``moment``, or a notify."""
        self._asleep_until = moment
        try:
            self._changed.wait(None if moment == float("inf") else max(0.0, moment - time.monotonic()))
        finally:
            self._asleep_until = None
