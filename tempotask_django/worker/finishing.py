"""Recording finished attempts: the finisher thread batches them and refills the slots they free."""

from __future__ import annotations

import json
import logging
import queue as queue_module
import time

from tempotask_django import serialization, signals
from tempotask_django.backoff import retry_delay_seconds
from tempotask_django.runner import Outcome, error_json
from tempotask_django.storage.outage import REDIS_ERRORS, ErrorThrottle
from tempotask_django.storage.records import ClaimResult, Finish, FinishOutcome
from tempotask_django.validation import MAX_SECONDS
from tempotask_django.worker.support import FINISH_BATCH, FINISH_RETRY_CAP, RunningJob, WorkerParts

logger = logging.getLogger("tempotask")


class FinishingMixin(WorkerParts):
    """The finisher thread's side of Worker."""

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
        error = error_json(outcome)
        if not outcome.permanent and job.attempt < job.max_attempts:
            delay = retry_delay_seconds(job.attempt, job.retry_delay, job.backoff, self.settings.max_retry_delay)
            if 0 <= delay <= MAX_SECONDS:
                delay_ms = int(delay * 1000)
            else:  # only a record damaged by another program holds such a delay: fail for good, saying so
                error = _not_retried(outcome, f"retry_delay {job.retry_delay!r} in its record is out of range")
        return Finish(running.queue, running.entry_id, running.job_id, False, error, delay_ms)

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
            signals.send(
                signals.job_completed, sender=outcome.task, job=job, result=outcome.result, duration=outcome.duration
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
        )
        signals.send(
            signals.job_failed,
            sender=outcome.task,
            job=job,
            error=outcome.error,
            will_retry=will_retry,
            duration=outcome.duration,
        )


def _not_retried(outcome: Outcome, why: str) -> str:
    """The attempt's error JSON, its message saying why the job is failed without a retry."""
    info = dict(outcome.error_info or {})
    info["message"] = f"{info.get('message', '')} (not retried: {why})".lstrip()
    return json.dumps(info, default=str)
