"""Housekeeping on a schedule: lease renewal and heartbeat, taking over stalled jobs, consumer clean-up.

The worker loop calls ``run_due(now)`` each iteration; each chore runs when its interval has
passed. Nothing here runs on a thread of its own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from tempotask_django.conf import Settings
from tempotask_django.storage.outage import REDIS_ERRORS, ErrorThrottle
from tempotask_django.storage.store import RedisStore
from tempotask_django.worker.dispatch import Dispatcher
from tempotask_django.worker.running import RunningJobs
from tempotask_django.worker.slots import Slots

logger = logging.getLogger("tempotask")

# Consumers idle this long (and holding nothing) are deleted from a group, seconds.
CONSUMER_MAX_IDLE = 3600
# Longest a take-over or a sweep works on one queue per chore, seconds: the loop must go on.
PASS_BUDGET = 0.2


class Housekeeper:
    """The periodic chores of one worker: heartbeat (leases and worker info), reclaim and sweep,
    forgetting idle consumers. ``describe()`` gives the worker info the heartbeat publishes."""

    def __init__(
        self,
        store: RedisStore,
        settings: Settings,
        worker_name: str,
        queues: list[str],
        concurrency: int,
        running: RunningJobs,
        slots: Slots,
        dispatcher: Dispatcher,
        throttle: ErrorThrottle,
        stopping: threading.Event,
        describe: Callable[[], dict[str, Any]],
    ) -> None:
        self.store = store
        self.settings = settings
        self.worker_name = worker_name
        self.queues = queues
        self.concurrency = concurrency
        self.running = running
        self.slots = slots
        self.dispatcher = dispatcher
        self.throttle = throttle
        self.stopping = stopping
        self.describe = describe
        lease = settings.stalled_timeout
        self._chores: dict[str, tuple[float, Callable[[], None]]] = {
            "heartbeat": (max(0.2, lease / 3), self.heartbeat),
            "reclaim": (max(0.5, lease / 2), self.reclaim_and_sweep),
            "forget_consumers": (300.0, self.forget_idle_consumers),
        }
        self._due: dict[str, float] = {}  # chore -> when it is due next (time.monotonic())

    # -- the schedule --------------------------------------------------------------------------
    def run_due(self, now: float, only: tuple[str, ...] | None = None) -> None:
        """Run each chore (of ``only``, if given) whose interval has passed at ``now`` (time.monotonic())."""
        for chore, (interval, action) in self._chores.items():
            if (only is None or chore in only) and now >= self._due.get(chore, 0):
                self._due[chore] = now + interval
                action()

    def seconds_to_next(self) -> float:
        """Seconds until the next chore is due (0 before the first run)."""
        if not self._due:
            return 0.0
        return max(0.0, min(self._due.values()) - time.monotonic())

    def while_stopping(self) -> None:
        """What a stopping worker still does while it waits for its running jobs: renew their leases
        (and its heartbeat). Without it another worker would take them over after STALLED_TIMEOUT and
        run them a second time. Nothing here starts a job."""
        try:
            self.run_due(time.monotonic(), only=("heartbeat",))
        except REDIS_ERRORS as exc:
            self.throttle.failed("renewing leases while stopping", exc)
        except Exception:
            logger.exception("worker %s: unexpected error renewing leases while stopping; continuing", self.worker_name)

    # -- the chores ----------------------------------------------------------------------------
    def heartbeat(self) -> None:
        """Renew the leases of running jobs and publish this worker's info."""
        self.renew_leases()
        self.store.register_worker(self.worker_name, self.describe(), ttl=max(3.0, self.settings.stalled_timeout))
        self.throttle.succeeded()  # Redis answered

    def renew_leases(self) -> None:
        for queue, entries in self.running.leases_by_queue().items():
            lost_entries, cancelled = self.store.renew_leases(queue, self.worker_name, entries)
            for entry in cancelled:  # a cancel notice this worker missed (the watchdog hears the others)
                self.running.cancel(entry)
            for lost in lost_entries:
                if not self.running.mark_lost(lost):
                    continue
                logger.warning(
                    "worker %s lost the lease of entry %s on %s (taken over, deleted, or Redis lost it); its result "
                    "will be discarded",
                    self.worker_name,
                    lost,
                    queue,
                )

    def reclaim_and_sweep(self) -> None:
        self.reclaim()
        self.sweep_lost_entries()

    def sweep_lost_entries(self) -> None:
        """Send back to waiting the running jobs whose stream entry was lost (deleted while pending,
        or lost by Redis): nothing else could ever finish or take them over. Starts no job here."""
        for queue in self.queues:
            offset, budget_end = 0, time.monotonic() + PASS_BUDGET
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

    def reclaim(self) -> None:
        """Take over jobs of dead workers, as far as free slots allow.

        A suspect (a job taken over twice) is only started when this worker runs nothing, and then
        runs alone. A busy worker may hold one instead: it drains (starts nothing new) and starts
        the suspect once it runs nothing. The other workers go on as usual.
        """
        if len(self.running) and self._free_slots() > 0:
            self.renew_leases()  # after an outage our own running jobs look stalled too: not to us
        for queue in sorted(self.queues, key=lambda q: not self.running.held_in(q)):  # a held suspect first
            cursor, budget_end = "0-0", time.monotonic() + PASS_BUDGET
            while time.monotonic() < budget_end:
                if self.stopping.is_set() or self._free_slots() <= 0:
                    return
                free = self.slots.reserve(queue, self.concurrency)
                if free <= 0:
                    break
                jobs: list[dict[str, str]] = []
                held = self.running.held_in(queue)
                try:
                    result = self.store.reclaim(
                        queue,
                        self.worker_name,
                        free,
                        cursor,
                        idle=len(self.running) == 0,
                        held=held,
                        may_hold=self.running.may_hold(),
                    )
                    jobs = result.jobs
                    for fields in jobs:
                        logger.warning(
                            "job %s %s taken over from a stalled worker", fields.get("id"), fields.get("name")
                        )
                        self.dispatcher.start(queue, fields, alone=result.alone)
                    self.running.hold(queue, result.held)  # after a held suspect started: never a gap
                finally:
                    self.slots.settle(queue, free, len(jobs))
                if result.held and result.held != held:
                    logger.warning(
                        "entry %s on %s is a suspect (its workers stopped twice): worker %s holds it and runs it "
                        "alone once its running jobs end",
                        result.held,
                        queue,
                        self.worker_name,
                    )
                if result.poisoned:
                    logger.error("%d job(s) on %s failed as poison pills (MAX_DELIVERIES)", result.poisoned, queue)
                cursor = result.cursor
                if cursor == "0-0" or result.alone:
                    break

    def forget_idle_consumers(self) -> None:
        for queue in self.queues:
            self.store.forget_consumers(queue, CONSUMER_MAX_IDLE * 1000)

    def _free_slots(self) -> int:
        """Jobs a take-over may start now."""
        return self.slots.free() if self.running.may_start(reclaiming=True) else 0
