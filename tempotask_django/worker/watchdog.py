"""The watchdog: one thread per worker that stops handlers at their time limit, passes cancel
notices to the jobs they name, and abandons a handler that does not stop.

- Time limits: every TICK it raises JobTimeout in each handler past its deadline (control.py).
- Cancels: it listens on the cancel channel (pub/sub, one connection per worker, no polling per
  job); a notice naming a job of this worker raises JobCancelled in its handler. A notice missed
  while the connection was down is caught up when the worker renews its leases (housekeeper.py).
- Hard stop: a handler still running TIMEOUT_GRACE after it was asked to stop (blocked in C code,
  or swallowing the exception) cannot be stopped from Python. Its attempt is recorded now (failed
  with JobTimeout, retried as usual, or cancelled) and the worker process must be replaced: the
  watchdog stops the worker and sets ``hard_stopped``; the worker gives its other running jobs
  back for immediate re-delivery (see Worker.shutdown) and exits with REPLACE_EXIT_CODE.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from tempotask_django.exceptions import JobCancelled, JobTimeout
from tempotask_django.job import error_record
from tempotask_django.storage.outage import REDIS_ERRORS, ErrorThrottle
from tempotask_django.storage.store import RedisStore
from tempotask_django.worker.finisher import Finisher
from tempotask_django.worker.outcome import Outcome
from tempotask_django.worker.running import RunningJob, RunningJobs

logger = logging.getLogger("tempotask")

# Seconds between two looks at the running jobs' deadlines (and longest wait for a cancel notice).
TICK = 0.1
# Longest the watchdog keeps trying to record an abandoned attempt while Redis fails, seconds: then
# the process exits anyway (the job's lease, not renewed past its deadline, runs out and another
# worker takes it over).
RECORD_PATIENCE = 5.0


class Watchdog:
    """Enforces time limits and cancels for one worker's running jobs, on its own thread."""

    def __init__(
        self,
        store: RedisStore,
        worker_name: str,
        running: RunningJobs,
        finisher: Finisher,
        grace: float,
        on_hard_stop: Callable[[], None],
    ) -> None:
        self.store = store
        self.worker_name = worker_name
        self.running = running
        self.finisher = finisher
        self.grace = grace
        self.on_hard_stop = on_hard_stop
        self.hard_stopped = threading.Event()
        self._stop = threading.Event()
        self._pubsub: Any = None
        self._throttle = ErrorThrottle()
        self._listen_again_at = 0.0
        self._thread = threading.Thread(target=self._loop, name="tempotask-watchdog", daemon=True)

    # -- the thread ----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread.ident is None:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
        self._close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._wait_for_notice(TICK)
                self.check(time.monotonic())
            except Exception:
                logger.exception("worker %s: watchdog error; continuing", self.worker_name)
                self._stop.wait(TICK)

    # -- cancel notices ------------------------------------------------------------------------
    def _wait_for_notice(self, timeout: float) -> None:
        """Wait up to ``timeout`` for a cancel notice and act on it."""
        if self._pubsub is None and time.monotonic() >= self._listen_again_at:
            self._listen()
        if self._pubsub is None:
            self._stop.wait(timeout)
            return
        try:
            message = self._pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)
        except REDIS_ERRORS as exc:
            self._close()
            self._listen_again_at = time.monotonic() + self._throttle.failed("listening for cancel notices", exc)
            return
        if message and message.get("type") == "message":
            self.on_notice(message.get("data"))

    def _listen(self) -> None:
        try:
            pubsub = self.store.client.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(self.store.global_keys.cancel_channel)
        except REDIS_ERRORS as exc:
            self._listen_again_at = time.monotonic() + self._throttle.failed("listening for cancel notices", exc)
            return
        self._pubsub = pubsub
        self._throttle.succeeded()

    def _close(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(*REDIS_ERRORS):  # the connection is gone anyway
                pubsub.close()

    def on_notice(self, data: Any) -> None:
        """A cancel notice: stop the job it names if this worker runs it. Anything else is ignored."""
        try:
            notice = json.loads(data)
        except (TypeError, ValueError):
            return
        if not isinstance(notice, dict) or notice.get("worker") != self.worker_name:
            return
        entry = notice.get("entry")
        if isinstance(entry, str) and entry:
            self.running.cancel(entry)

    # -- deadlines and the hard stop ----------------------------------------------------------
    def check(self, now: float) -> None:
        """Raise JobTimeout in handlers past their deadline; abandon those past the grace period."""
        if self.hard_stopped.is_set():
            return
        abandon = False
        for running in self.running.snapshot():
            control = running.control
            control.check_deadline(now)
            if control.past_grace(now, self.grace):
                abandon = True
        if abandon:
            self.hard_stop(now)

    def hard_stop(self, now: float) -> None:
        """Record every handler that was asked to stop and still runs, then have the worker replaced."""
        self.on_hard_stop()  # the worker claims nothing more
        stuck = [r for r in self.running.snapshot() if r.control.reason is not None and not r.control.done]
        for running in stuck:
            logger.error(
                "worker %s: job %s did not stop within TIMEOUT_GRACE (%gs) after %s; recorded, and this "
                "worker process is replaced",
                self.worker_name,
                running.job_id,
                self.grace,
                "its cancel" if running.control.cancel_requested else "its time limit",
            )
        self._record(stuck, now)
        self.hard_stopped.set()

    def _record(self, stuck: list[RunningJob], now: float) -> None:
        batch = [(running, self._outcome(running, now)) for running in stuck]
        self.running.finishing([running for running, _ in batch])
        finishes = [self.finisher.finish_for(running, outcome) for running, outcome in batch]
        deadline = time.monotonic() + RECORD_PATIENCE
        throttle = ErrorThrottle(cap=0.5)
        while True:
            try:
                results, _ = self.store.finish_and_claim(self.worker_name, finishes)
                break
            except REDIS_ERRORS as exc:
                if time.monotonic() >= deadline:
                    logger.error("worker %s: could not record the abandoned jobs: %s", self.worker_name, exc)
                    self.running.forget([running for running, _ in batch])
                    return
                time.sleep(throttle.failed("recording abandoned jobs", exc))
        for (running, outcome), finish, result in zip(batch, finishes, results, strict=True):
            self.finisher.after_finish(running, outcome, finish, result)

    def _outcome(self, running: RunningJob, now: float) -> Outcome:
        control = running.control
        job, task = control.job, control.task
        if control.cancel_requested:
            error: BaseException = JobCancelled(
                f"the job was cancelled and its handler did not stop within TIMEOUT_GRACE ({self.grace:g}s) (hard)"
            )
        else:
            error = JobTimeout(
                f"the handler ran past its time limit of {control.timeout:g}s and did not stop within "
                f"TIMEOUT_GRACE ({self.grace:g}s) (hard)"
            )
        duration = now - control.started if control.started is not None else 0.0
        info = error_record(error, job.attempt, self.worker_name)
        return Outcome(
            job, False, duration, error=error, error_info=info, task=task, cancelled=control.cancel_requested
        )
