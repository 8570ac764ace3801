"""Writing the progress handlers report (``job.set_progress``), at most a few times a second per job.

A report is one round trip (storage/lua/progress.lua). Reports that come faster than MIN_INTERVAL
are held: the newest replaces the one held, and is written when the interval is over (by a timer)
or when the handler returns (``flush``), whichever comes first, so the last value is never lost.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from tempotask_django import serialization
from tempotask_django.job import Job
from tempotask_django.storage.outage import REDIS_ERRORS
from tempotask_django.storage.store import RedisStore

logger = logging.getLogger("tempotask")

# Shortest time between two writes of one job's progress, seconds (four a second at most).
MIN_INTERVAL = 0.25


class _JobProgress:
    """One running attempt's throttle: when it last wrote, the report it holds, its timer, and the
    number of the newest report written (a slow write never overwrites a newer one)."""

    __slots__ = ("held", "last", "reports", "timer", "write_lock", "written")

    def __init__(self) -> None:
        self.last = -MIN_INTERVAL
        self.held: tuple[int, dict[str, Any]] | None = None
        self.timer: threading.Timer | None = None
        self.reports = 0
        self.written = 0
        self.write_lock = threading.Lock()


class ProgressWriter:
    """Throttles and writes the progress of a worker's running jobs."""

    def __init__(self, store: RedisStore, min_interval: float = MIN_INTERVAL) -> None:
        self.store = store
        self.min_interval = min_interval
        self._lock = threading.Lock()
        self._jobs: dict[tuple[str, str], _JobProgress] = {}

    def report(self, job: Job, record: dict[str, Any]) -> None:
        """``job.set_progress``'s sink: write now, or hold it for the end of the interval."""
        key = (job.queue, job.entry_id or "")
        with self._lock:
            state = self._jobs.setdefault(key, _JobProgress())
            state.reports += 1
            number = state.reports
            wait = state.last + self.min_interval - time.monotonic()
            if wait > 0:
                state.held = (number, record)
                if state.timer is None:
                    state.timer = threading.Timer(wait, self._write_held, (job, key))
                    state.timer.daemon = True
                    state.timer.start()
                return
            state.last = time.monotonic()
        self._write(job, state, number, record)

    def flush(self, job: Job) -> None:
        """The handler returned: write the progress it still holds, and forget the job."""
        with self._lock:
            state = self._jobs.pop((job.queue, job.entry_id or ""), None)
            if state is None:
                return
            if state.timer is not None:
                state.timer.cancel()
            held, state.held = state.held, None
        if held is not None:
            self._write(job, state, *held)

    def _write_held(self, job: Job, key: tuple[str, str]) -> None:
        with self._lock:
            state = self._jobs.get(key)
            if state is None or state.held is None:
                return
            held, state.held, state.timer = state.held, None, None
            state.last = time.monotonic()
        self._write(job, state, *held)

    def _write(self, job: Job, state: _JobProgress, number: int, record: dict[str, Any]) -> None:
        with state.write_lock:
            if number <= state.written:
                return
            state.written = number
            try:
                self.store.set_progress(job.queue, job.id, job.entry_id or "", serialization.dumps(record))
            except REDIS_ERRORS as exc:  # progress is advisory: a Redis error must not fail the job
                logger.warning("job %s: could not store its progress: %s", job.id, exc)
