"""The jobs a worker is running, and whether it may start more beside them.

The dispatcher adds a job when it starts, the finisher removes it once recorded, the housekeeper
renews its lease and marks it lost. A suspect job (taken over twice: it may be what kills its
workers) runs alone, and a worker that knows one waits for a worker running nothing stops starting
jobs until it runs nothing (draining). That state lives here, next to the table it depends on,
so every part asks one owner whether it may start a job.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


@dataclass
class RunningJob:
    """One started attempt, from its start until its outcome is recorded."""

    queue: str
    job_id: str
    entry_id: str
    started: float = field(default_factory=time.monotonic)
    finishing: bool = False  # handed to the finisher: its lease may be gone any moment, no news
    lost: bool = False  # another worker took it over (or Redis lost it): warned once, not renewed


class RunningJobs:
    """The table of running jobs (by stream entry id) and the suspect state; safe across threads."""

    def __init__(self) -> None:
        self._jobs: dict[str, RunningJob] = {}
        self._lock = threading.Lock()
        self._alone: str | None = None  # entry id of the suspect running alone
        self._draining = False  # a suspect waits for a worker running nothing: start nothing

    def __len__(self) -> int:
        with self._lock:
            return len(self._jobs)

    def add(self, running: RunningJob, *, alone: bool = False) -> None:
        """A job started; ``alone`` when it is a suspect that runs with nothing beside it."""
        with self._lock:
            self._jobs[running.entry_id] = running
            if alone:
                self._alone, self._draining = running.entry_id, False

    def finishing(self, batch: list[RunningJob]) -> None:
        """These jobs ended and are being recorded: a lease lost from now on is no news."""
        with self._lock:
            for running in batch:
                running.finishing = True

    def remove(self, running: RunningJob) -> None:
        """The job's outcome is recorded (or given up on): it no longer runs."""
        with self._lock:
            self._jobs.pop(running.entry_id, None)
            if self._alone == running.entry_id:
                self._alone = None

    def leases_by_queue(self) -> dict[str, list[str]]:
        """Entry ids whose leases to renew, per queue (jobs already lost are not renewed)."""
        with self._lock:
            by_queue: dict[str, list[str]] = {}
            for running in self._jobs.values():
                if not running.lost:
                    by_queue.setdefault(running.queue, []).append(running.entry_id)
            return by_queue

    def mark_lost(self, entry_id: str) -> bool:
        """The lease of ``entry_id`` is gone. True when that is news (the job still runs, not finishing)."""
        with self._lock:
            running = self._jobs.get(entry_id)
            if running is None or running.finishing:
                return False  # finished meanwhile: not a loss
            running.lost = True
            return True

    # -- the suspect state -----------------------------------------------------------------------
    @property
    def alone(self) -> str | None:
        """Entry id of the suspect running alone, if any."""
        return self._alone

    @property
    def draining(self) -> bool:
        """True while a suspect waits for this worker to run nothing."""
        return self._draining

    def suspects_waiting(self, waiting: bool) -> None:
        """What the last take-over saw: drain when a suspect waits, unless one already runs alone."""
        self._draining = waiting and self._alone is None

    def may_start(self, *, reclaiming: bool = False) -> bool:
        """May a job start now? Never beside a suspect, nor while draining for one (until nothing
        runs; then only the take-over that starts the suspect)."""
        if self._alone is not None:
            return False
        return not self._draining or (reclaiming and not len(self))

    def may_refill(self) -> bool:
        """May the finisher claim new jobs for the slots it frees? Not around a suspect."""
        return self._alone is None and not self._draining
