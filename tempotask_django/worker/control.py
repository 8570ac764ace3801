"""Stopping one running handler from outside: at its time limit (JobTimeout) or when its job is
cancelled (JobCancelled).

A sync handler runs on a job thread (or, in a worker of one job at a time, on the finisher's
thread): the exception is raised inside it with ``PyThreadState_SetAsyncExc``, at its next Python
instruction, so ``finally`` blocks and context managers run. An async handler is a task on the
worker's event loop: it is cancelled, and the ``CancelledError`` it ends with is reported as the
JobTimeout or JobCancelled it stands for.
A handler blocked in C code (a socket read without timeout, ``time.sleep``) or that swallows the
exception does not stop: the watchdog (watchdog.py) abandons it after TIMEOUT_GRACE.

The lock makes "raise into the thread" and "the handler returned" exclusive: once the handler
returned, nothing is raised into its thread any more, and an exception raised but not yet
delivered is withdrawn.
"""

from __future__ import annotations

import asyncio
import ctypes
import threading
import time
from typing import Any

from tempotask_django.exceptions import JobCancelled, JobTimeout

TIMEOUT = "timeout"
CANCEL = "cancel"


def timeout_of(value: str | None) -> float | None:
    """A job record's ``timeout`` field: seconds, or None (no limit, or a damaged value)."""
    try:
        seconds = float(value) if value else 0.0
    except ValueError:
        return None
    return seconds if 0 < seconds < float("inf") else None


def _raise_in_thread(thread_id: int, exc_type: type[BaseException] | None) -> None:
    """Raise ``exc_type`` in thread ``thread_id`` at its next instruction (None withdraws it)."""
    # NULL (None, not py_object(None)) withdraws a pending exception.
    exc = ctypes.py_object(exc_type) if exc_type is not None else None
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), exc)


class JobControl:
    """The stop controls of one running attempt, shared by the runner (its thread or task), the
    watchdog and the cancel notices. ``timeout``: seconds the handler may run, None for no limit."""

    __slots__ = (
        "_injected",
        "_lock",
        "_loop",
        "_task",
        "_thread_id",
        "cancel_requested",
        "deadline",
        "done",
        "job",
        "reason",
        "started",
        "stop_sent_at",
        "task",
        "timeout",
    )

    def __init__(self, timeout: float | None = None, *, cancel_requested: bool = False) -> None:
        self.timeout = timeout
        self.cancel_requested = cancel_requested
        self.started: float | None = None  # time.monotonic() when the handler was called
        self.deadline: float | None = None  # time.monotonic() of the time limit
        self.reason: str | None = None  # TIMEOUT or CANCEL once asked to stop
        self.stop_sent_at: float | None = None  # when the exception was raised in the handler
        self.done = False  # the handler returned (or raised): nothing more to stop
        self.job: Any = None  # the Job and Task being run (set by the runner), for the hard stop's record
        self.task: Any = None
        self._lock = threading.Lock()
        self._thread_id: int | None = None
        self._task: asyncio.Task[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._injected = False

    # -- the runner's side ---------------------------------------------------------------------
    def attach(self, job: Any, task: Any) -> None:
        """The Job and Task this attempt runs: the handler's ``job.cancel_requested`` reads this control."""
        self.job, self.task = job, task
        job._control = self

    def should_not_start(self) -> bool:
        """Cancelled before its handler was called: the job ends without running."""
        return self.cancel_requested

    def enter_thread(self) -> None:
        """The handler is about to be called on this thread."""
        with self._lock:
            self._thread_id = threading.get_ident()
            self._begin()

    def enter_task(self, task: asyncio.Task[Any] | None, loop: asyncio.AbstractEventLoop) -> None:
        """The handler is about to be awaited in ``task`` on ``loop``."""
        with self._lock:
            self._task, self._loop = task, loop
            self._begin()

    def _begin(self) -> None:
        self.started = time.monotonic()
        if self.timeout is not None:
            self.deadline = self.started + self.timeout
        if self.cancel_requested and self.reason is None:
            self._stop(CANCEL)  # cancelled between the check and the call: stop at once

    def leave(self) -> None:
        """The handler returned or raised: withdraw an exception raised but not yet delivered."""
        with self._lock:
            if self.done:
                return
            self.done = True
            if self._injected and self._thread_id is not None:
                _raise_in_thread(self._thread_id, None)

    def error_for(self, exc: BaseException) -> BaseException:
        """The error to record for a handler that raised ``exc``: when it was stopped and ended with
        the stop (or the CancelledError an async handler gets), the stop with a message saying why;
        else ``exc`` itself."""
        if self.reason is None or not isinstance(exc, JobCancelled | JobTimeout | asyncio.CancelledError):
            return exc
        if exc.args and not isinstance(exc, asyncio.CancelledError):
            return exc  # raised by the handler itself (job.check_cancelled()), with its own message
        error: BaseException
        if self.cancel_requested:
            error = JobCancelled("the job was cancelled while it ran")
        else:
            error = JobTimeout(f"the handler ran past its time limit of {self.timeout:g}s")
        error.__cause__ = exc
        return error

    @property
    def ended_cancelled(self) -> bool:
        """The attempt ended because of a cancel: the job ends cancelled."""
        return self.cancel_requested

    # -- the watchdog's side -------------------------------------------------------------------
    def request_cancel(self) -> None:
        """The job was cancelled: stop the handler (or keep it from starting)."""
        with self._lock:
            self.cancel_requested = True
            if self.started is not None and not self.done and self.reason is None:
                self._stop(CANCEL)

    def check_deadline(self, now: float) -> None:
        """Raise JobTimeout in the handler if its time limit passed."""
        if self.deadline is None or now < self.deadline or self.reason is not None or self.done:
            return
        with self._lock:
            if not self.done and self.reason is None:
                self._stop(TIMEOUT)

    def past_grace(self, now: float, grace: float) -> bool:
        """Asked to stop more than ``grace`` seconds ago and still running: to be abandoned."""
        sent = self.stop_sent_at
        return sent is not None and not self.done and now - sent >= grace

    def renews_lease(self, now: float) -> bool:
        """Leases are renewed up to the time limit, not beyond (a hung handler's lease runs out)."""
        return self.deadline is None or now < self.deadline

    def _stop(self, reason: str) -> None:
        """Under the lock: raise the stop in the handler."""
        self.reason = reason
        self.stop_sent_at = time.monotonic()
        if self._thread_id is not None:
            _raise_in_thread(self._thread_id, JobCancelled if reason == CANCEL else JobTimeout)
            self._injected = True
        elif self._task is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
