"""How many more jobs a worker may start, overall and per queue, shared by the threads that claim.

Both the worker loop and the finisher thread claim jobs (the finisher refills the slots a batch
frees in the same round trip that records the batch), so every claim first reserves its slots
here and settles them afterwards: two claims together never start more jobs than the worker's
concurrency, a queue's limit or ``max_jobs`` allow, so no claimed job ever waits for a thread.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping


class Slots:
    """Free capacity of one worker. ``limits`` maps each queue to the most jobs it may run at once;
    ``groups`` maps each partition of a partitioned queue to its queue, whose limit the partitions share."""

    def __init__(
        self,
        concurrency: int,
        limits: Mapping[str, int],
        max_jobs: int | None = None,
        groups: Mapping[str, str] | None = None,
    ) -> None:
        self.concurrency = concurrency
        self.groups = dict(groups or {})
        self.limits = {self.groups.get(queue, queue): limit for queue, limit in limits.items()}
        self.max_jobs = max_jobs
        self.started = 0
        self._used = dict.fromkeys(self.limits, 0)  # per queue: running jobs plus reserved slots
        self._used_total = 0
        self._reserved = 0
        self._lock = threading.Lock()

    def free(self) -> int:
        """Jobs the worker may start now, all queues together (may be <= 0)."""
        with self._lock:
            return self._free()

    def _free(self) -> int:
        free = self.concurrency - self._used_total
        if self.max_jobs is not None:
            free = min(free, self.max_jobs - self.started - self._reserved)
        return free

    def free_in(self, queue: str) -> int:
        queue = self.groups.get(queue, queue)
        with self._lock:
            return min(self._free(), self.limits[queue] - self._used[queue])

    def reserve(self, queue: str, wanted: int) -> int:
        """Hold up to ``wanted`` slots of ``queue`` for a claim; returns how many (maybe 0)."""
        queue = self.groups.get(queue, queue)
        with self._lock:
            count = max(0, min(wanted, self._free(), self.limits[queue] - self._used[queue]))
            self._used[queue] += count
            self._used_total += count
            self._reserved += count
            return count

    def settle(self, queue: str, reserved: int, started: int) -> None:
        """A claim that reserved ``reserved`` slots is over and started ``started`` jobs in them."""
        queue = self.groups.get(queue, queue)
        with self._lock:
            self._reserved -= reserved
            self.started += started
            self._used[queue] -= reserved - started
            self._used_total -= reserved - started

    def finished(self, queue: str, count: int = 1) -> None:
        """``count`` jobs of ``queue`` stopped running: their slots are free again."""
        queue = self.groups.get(queue, queue)
        with self._lock:
            self._used[queue] -= count
            self._used_total -= count
