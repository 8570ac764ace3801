"""The jobs a worker is running, and whether it may start more beside them.

The dispatcher adds a job when it starts, the finisher removes it once recorded, the housekeeper
renews its lease and marks it lost. A suspect job (taken over twice: it may be what kills its
workers) runs alone. A busy worker that took one over holds it (renews its lease without running it)
and starts nothing new until it runs nothing (draining); then it starts the suspect alone. Only
that worker drains: the others never see the held suspect as stalled. That state lives here, next
to the table it depends on, so every part asks one owner whether it may start a job.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from tempotask_django.worker.control import JobControl

# Seconds a cancel notice for an entry this worker does not run (yet) is remembered: the notice can
# overtake the claim's reply that starts the job.
EARLY_CANCEL_SECONDS = 10.0


@dataclass
class RunningJob:
    """One started attempt, from its start until its outcome is recorded."""

    queue: str
    job_id: str
    entry_id: str
    started: float = field(default_factory=time.monotonic)
    finishing: bool = False  # handed to the finisher: its lease may be gone any moment, no news
    lost: bool = False  # another worker took it over (or Redis lost it): warned once, not renewed
    control: JobControl = field(default_factory=JobControl)  # stops it at its time limit or on a cancel


class RunningJobs:
    """The table of running jobs (by stream entry id) and the suspect state; safe across threads."""

    def __init__(self) -> None:
        self._jobs: dict[str, RunningJob] = {}
        self._lock = threading.Lock()
        self._alone: str | None = None  # entry id of the suspect running alone
        self._held: tuple[str, str] | None = None  # (queue, entry id) of the suspect held: start nothing
        self._early_cancels: dict[str, float] = {}  # entry id -> when a cancel notice came before its job

    def __len__(self) -> int:
        with self._lock:
            return len(self._jobs)

    def add(self, running: RunningJob, *, alone: bool = False) -> None:
        """A job started; ``alone`` when it is a suspect that runs with nothing beside it."""
        with self._lock:
            self._jobs[running.entry_id] = running
            if self._early_cancels and self._early_cancels.pop(running.entry_id, None) is not None:
                running.control.request_cancel()
            if alone:
                self._alone = running.entry_id
                if self._held is not None and self._held[1] == running.entry_id:
                    self._held = None

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

    def cancel(self, entry_id: str) -> bool:
        """The job of ``entry_id`` was cancelled: stop it. An entry not running here yet is remembered
        a while (the notice may come before the job starts). True when the job runs here."""
        with self._lock:
            running = self._jobs.get(entry_id)
            if running is None:
                now = time.monotonic()
                if len(self._early_cancels) > 1000:  # bounded: forget the old ones
                    self._early_cancels = {
                        e: t for e, t in self._early_cancels.items() if now - t < EARLY_CANCEL_SECONDS
                    }
                self._early_cancels[entry_id] = now
                return False
        running.control.request_cancel()
        return True

    def snapshot(self) -> list[RunningJob]:
        """The running jobs now (a copy: the watchdog looks at them without holding the lock)."""
        with self._lock:
            return list(self._jobs.values())

    def forget(self, batch: list[RunningJob]) -> None:
        """Jobs this worker abandons (it exits): it no longer waits for them nor renews their leases."""
        with self._lock:
            for running in batch:
                self._jobs.pop(running.entry_id, None)
                if self._alone == running.entry_id:
                    self._alone = None

    def leases_by_queue(self) -> dict[str, list[str]]:
        """Entry ids whose leases to renew, per queue (jobs already lost are not renewed, nor those
        past their time limit: a handler that hangs past it loses its lease)."""
        now = time.monotonic()
        with self._lock:
            by_queue: dict[str, list[str]] = {}
            for running in self._jobs.values():
                if not running.lost and running.control.renews_lease(now):
                    by_queue.setdefault(running.queue, []).append(running.entry_id)
            if self._held is not None:  # held, not started: renewed, or another worker takes it over
                by_queue.setdefault(self._held[0], []).append(self._held[1])
            return by_queue

    def mark_lost(self, entry_id: str) -> bool:
        """The lease of ``entry_id`` is gone. True when that is news (the job still runs, not finishing).
        A held suspect whose lease is gone is no longer held: the worker stops draining for it."""
        with self._lock:
            if self._held is not None and self._held[1] == entry_id:
                self._held = None
                return False
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
        """True while this worker holds a suspect: it starts nothing until it runs nothing."""
        return self._held is not None

    def held_in(self, queue: str) -> str:
        """Entry id of the suspect held in ``queue``, "" when none."""
        held = self._held
        return held[1] if held is not None and held[0] == queue else ""

    def may_hold(self) -> bool:
        """May a take-over hold a suspect? One at a time, and not beside one running alone."""
        return self._held is None and self._alone is None

    def hold(self, queue: str, entry_id: str) -> None:
        """What a take-over of ``queue`` left held: ``entry_id`` ("" when none there: started or gone)."""
        with self._lock:
            if entry_id:
                self._held = (queue, entry_id)
            elif self._held is not None and self._held[0] == queue:
                self._held = None

    def may_start(self, *, reclaiming: bool = False) -> bool:
        """May a job start now? Never beside a suspect, nor while draining for one (until nothing
        runs; then only the take-over that starts the suspect)."""
        if self._alone is not None:
            return False
        return self._held is None or (reclaiming and not len(self))

    def may_refill(self) -> bool:
        """May the finisher claim new jobs for the slots it frees? Not around a suspect."""
        return self._alone is None and self._held is None
