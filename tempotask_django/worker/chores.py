"""Housekeeping on a schedule: lease renewal and heartbeat, taking over stalled jobs, consumer clean-up."""

from __future__ import annotations

import logging
import time
from typing import Any

from tempotask_django.storage.outage import REDIS_ERRORS
from tempotask_django.worker.support import CONSUMER_MAX_IDLE, WorkerParts

logger = logging.getLogger("tempotask")


class ChoresMixin(WorkerParts):
    """Worker's periodic chores, run from the main loop by ``_do_chores``."""

    def _chores(self) -> dict[str, tuple[float, Any]]:
        lease = self.settings.stalled_timeout
        return {
            "heartbeat": (max(0.2, lease / 3), self._heartbeat),
            "reclaim": (max(0.5, lease / 2), self._reclaim_and_sweep),
            "forget_consumers": (300.0, self._forget_idle_consumers),
        }

    def _do_chores(self, only: tuple[str, ...] | None = None) -> None:
        now = time.monotonic()
        for chore, (interval, action) in self._chores().items():
            if (only is None or chore in only) and now >= self._chores_due.get(chore, 0):
                self._chores_due[chore] = now + interval
                action()

    def _chores_while_stopping(self) -> None:
        """What a stopping worker still does while it waits for its running jobs: renew their leases
        (and its heartbeat). Without it another worker would take them over after STALLED_TIMEOUT and
        run them a second time. Nothing here starts a job."""
        try:
            self._do_chores(only=("heartbeat",))
        except REDIS_ERRORS as exc:
            self._throttle.failed("renewing leases while stopping", exc)
        except Exception:
            logger.exception("worker %s: unexpected error renewing leases while stopping; continuing", self.name)

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
                    "worker %s lost the lease of entry %s on %s (taken over, deleted, or Redis lost it); its result "
                    "will be discarded",
                    self.name,
                    lost,
                    queue,
                )

    def info(self) -> dict[str, Any]:
        """What the admin shows about this worker."""
        host, pid, _ = ([*self.name.split(":"), "", "", ""])[:3]
        return {
            "host": host,
            "pid": pid,
            "queues": ",".join(self.queues),
            "concurrency": self.concurrency,
            "started": int(self.started_at * 1000),
            "jobs_done": self.jobs_done,
            "running": self.running_count,
        }

    def _reclaim_and_sweep(self) -> None:
        self._reclaim()
        self._sweep_lost_entries()

    def _sweep_lost_entries(self) -> None:
        """Send back to waiting the running jobs whose stream entry was lost (deleted while pending,
        or lost by Redis): nothing else could ever finish or take them over. Starts no job here."""
        for queue in self.queues:
            offset, budget_end = 0, time.monotonic() + 0.2
            while True:
                result = self.store.sweep_lost_entries(queue, offset)
                if result.requeued:
                    logger.warning("%d job(s) on %s lost their stream entry; queued again", result.requeued, queue)
                if result.failed:
                    logger.error(
                        "%d job(s) on %s lost their stream entry too many times in a row (MAX_DELIVERIES); failed",
                        result.failed,
                        queue,
                    )
                offset = result.offset
                if offset == 0 or time.monotonic() >= budget_end:
                    break

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
