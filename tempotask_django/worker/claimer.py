"""Claiming jobs from the queues' streams, and blocking on the doorbell while there is nothing to claim.

Every claim first reserves its slots (``Slots``) and settles them afterwards, whoever claims: the
worker loop here, or the finisher when it refills the slots a batch frees.
"""

from __future__ import annotations

import threading
import time

from tempotask_django.storage.outage import REDIS_ERRORS, ErrorThrottle
from tempotask_django.storage.records import ClaimResult
from tempotask_django.storage.store import RedisStore
from tempotask_django.worker.dispatch import Dispatcher
from tempotask_django.worker.slots import Slots

# Longest single block on the doorbell, ms: bounds how long a stop request waits when idle (about
# a second), at the cost of one round trip a second per idle worker.
IDLE_BLOCK_MS = 1000


class Claimer:
    """Claims jobs of ``queues`` (first listed first) for one worker and hands them to the dispatcher.

    ``groups`` lists the queues in order, the partitions of a partitioned queue together in one group
    (one queue alone otherwise). Groups are served first listed first; within a group, the partition
    served first turns at every claim (``order``), so that no partition waits while others have work.
    """

    def __init__(
        self,
        store: RedisStore,
        worker_name: str,
        queues: list[str],
        slots: Slots,
        dispatcher: Dispatcher,
        throttle: ErrorThrottle,
        groups: list[list[str]] | None = None,
        stopping: threading.Event | None = None,
    ) -> None:
        self.store = store
        self.stopping = stopping or threading.Event()
        self.worker_name = worker_name
        self.queues = queues
        self.groups = groups if groups is not None else [[queue] for queue in queues]
        self._turns = [0] * len(self.groups)
        self.slots = slots
        self.dispatcher = dispatcher
        self.throttle = throttle
        self._wake_ids = dict.fromkeys(queues, "0-0")
        self._next_due = dict.fromkeys(queues, -1)
        # Per queue: did the last claim get every job it asked for (so more may be waiting)? The
        # finisher only refills from a queue that may have more; otherwise it wakes the loop.
        self._more_waiting = dict.fromkeys(queues, False)

    def order(self) -> list[list[str]]:
        """The groups in order, each partitioned queue's partitions starting one further than at the
        last call: every partition comes first in turn."""
        ordered = []
        for index, group in enumerate(self.groups):
            if len(group) > 1:
                turn = self._turns[index] = (self._turns[index] + 1) % len(group)
                group = group[turn:] + group[:turn]
            ordered.append(group)
        return ordered

    def claim_and_start(self, free: int) -> tuple[int, bool]:
        """Claim up to ``free`` jobs, first listed queue first (see ``order``). Returns (started,
        every queue drained)."""
        started, drained = 0, True
        for queue in (queue for group in self.order() for queue in group):
            count = self.slots.reserve(queue, free - started)
            if count <= 0:
                continue
            result = self.claim(queue, count)
            started += len(result.jobs)
            drained = drained and len(result.jobs) < count
            if started >= free:
                break
        return started, drained

    def claim(self, queue: str, count: int, wait_ms: int = 0, wake_ids: dict[str, str] | None = None) -> ClaimResult:
        """Claim ``count`` reserved slots' worth of jobs of ``queue`` and start them; with ``wait_ms``,
        after waiting that long at most for the doorbells of ``wake_ids`` (default: every queue's),
        in the same round trip."""
        jobs: list[dict[str, str]] = []
        try:
            result = self._claim_answered(queue, count, wait_ms, wake_ids)
            self.throttle.succeeded()  # Redis answered
            jobs = result.jobs
            self._wake_ids[queue] = result.wake_id
            self.claimed(queue, result, count)
        finally:
            self.slots.settle(queue, count, len(jobs))
        return result

    def _claim_answered(self, queue: str, count: int, wait_ms: int, wake_ids: dict[str, str] | None) -> ClaimResult:
        """The claim, repeated while Redis does not answer, its slots held meanwhile.

        A claim that raised may have run and leased a batch to this worker: only the same call
        repeated soon, for as many jobs or more, gets that batch (storage/replies.py). Left to a
        later claim, it could be one with less room (the finisher refilled meanwhile), and the
        batch would stay leased to nobody until STALLED_TIMEOUT. Raises when the worker stops or
        after a third of STALLED_TIMEOUT (the loop renews leases, then claims again).
        """
        first_sent = time.monotonic()
        try:
            if wait_ms > 0:
                waited = self._wake_ids if wake_ids is None else wake_ids
                return self.store.wait_then_claim(waited, wait_ms, queue, self.worker_name, count)
            return self.store.claim(queue, self.worker_name, count)
        except REDIS_ERRORS as exc:
            error: Exception = exc
        # Within the request ids' lease window (half of STALLED_TIMEOUT), and short enough that the
        # leases of the jobs running here, renewed by the loop every third of it, cannot run out
        # meanwhile: a queue on another cluster node may still answer.
        window = self.store.settings.stalled_timeout / 3
        while True:
            pause = self.throttle.failed(f"claiming jobs of {queue}", error)
            if self.stopping.wait(pause) or time.monotonic() - first_sent + pause > window:
                raise error
            try:
                return self.store.claim(queue, self.worker_name, count)
            except REDIS_ERRORS as exc:
                error = exc

    def claimed(self, queue: str, result: ClaimResult, count: int) -> None:
        """Start the jobs a claim of ``count`` got (claimed here or by the finisher's refill)."""
        self._next_due[queue] = result.next_due_ms
        self._more_waiting[queue] = len(result.jobs) >= count and not result.paused
        for fields in result.jobs:
            self.dispatcher.start(queue, fields)

    def may_have_more(self, queue: str) -> bool:
        """Did the last claim of ``queue`` get all it asked for (so more may be waiting)?"""
        return self._more_waiting[queue]

    def block_ms(self) -> int:
        """How long an idle wait may block: IDLE_BLOCK_MS, or less when a delayed job is due sooner."""
        return min([IDLE_BLOCK_MS, *(due for due in self._next_due.values() if due >= 0)])

    def wait_then_claim(self, timeout_ms: int, free: int) -> int | None:
        """Block until a job is enqueued (``timeout_ms`` at most); returns jobs started, or None at
        once when no queue has room (the caller waits for a slot instead).

        The wait and a claim of the first queue with room go in one round trip (see
        ``RedisStore.wait_then_claim``): the job that ends the wait usually starts at once. Jobs of
        the other queues are claimed by the next iteration. Only the doorbells of queues with room
        are waited on: a queue at its limit (or a partition of one) has doorbell entries no claim
        has seen, which would end every wait at once while nothing can be claimed from it.
        """
        roomy = {queue: self._wake_ids[queue] for queue in self.queues if self.slots.free_in(queue) > 0}
        if not roomy:
            return None
        ordered = (queue for group in self.order() for queue in group)
        queue = next(q for q in ordered if q in roomy)
        count = self.slots.reserve(queue, free)
        if count <= 0:
            self.store.wait_for_jobs(roomy, timeout_ms)
            return 0
        return len(self.claim(queue, count, wait_ms=timeout_ms, wake_ids=roomy).jobs)

    def queues_idle(self) -> bool:
        """Nothing waiting, due or in progress in any of this worker's queues."""
        for queue in self.queues:
            stats = self.store.inspect.queue_stats(queue)
            if stats.waiting or stats.processing or self._next_due[queue] == 0:
                return False
        return True
