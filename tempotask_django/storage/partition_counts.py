"""The number of partitions of each partitioned queue, recorded in Redis (``P:partitions``).

A job id maps to partition ``crc32(id) % N``: with another N, the same id maps elsewhere, and the
new partitions (``emails~3of4``) are other keys than the old (``emails~3of8``), which no worker
configured with the new N serves. So N may change only once the queue's old layout holds no active
job (waiting, delayed or processing): a producer or a worker that finds another N recorded while the
old partitions still hold active jobs raises ``PartitionCountChanged`` (and ``manage.py check``
reports it, tempotask.E015); once they are drained, the first one to use the new N records it.
The finished jobs of the old layout stay where they are until trimmed or purged.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, NamedTuple

from tempotask_django import partitions
from tempotask_django.exceptions import ConfigurationError
from tempotask_django.job import JobStatus

if TYPE_CHECKING:
    from tempotask_django.storage.store import RedisStore

logger = logging.getLogger("tempotask")

ACTIVE = (JobStatus.WAITING, JobStatus.DELAYED, JobStatus.PROCESSING)


class PartitionCountChanged(ConfigurationError):
    """PARTITIONS of a queue differs from the number its live jobs are spread over."""


class Mismatch(NamedTuple):
    """A queue whose configured PARTITIONS differs from the recorded one, with active jobs left."""

    queue: str
    recorded: int
    configured: int
    active: int

    @property
    def message(self) -> str:
        return (
            f"queue {self.queue!r} has PARTITIONS = {self.configured}, but its {self.active} active job(s) are "
            f"spread over the {self.recorded} partition(s) recorded in Redis"
        )

    @property
    def hint(self) -> str:
        return (
            f"Keep PARTITIONS = {self.recorded} until those jobs are done (stop the producers of the queue and let "
            f"its workers drain it), then change it: the first worker or producer with the new value records it."
        )

    def error(self) -> PartitionCountChanged:
        return PartitionCountChanged(f"{self.message}. {self.hint} (tempotask.E015)")


class PartitionCounts:
    """Reads and records ``P:partitions`` for one store; ``ensure`` is cached per process."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self.key = store.global_keys.partitions
        self._ensured: dict[str, int] = {}

    def recorded(self, queue: str) -> int:
        """The number of partitions recorded for ``queue``; 1 when none is (never partitioned)."""
        value = self.store.client.hget(self.key, queue)
        return int(value) if value else 1

    def active_jobs(self, queue: str, count: int) -> int:
        """Waiting, delayed and processing jobs of ``queue`` laid out over ``count`` partitions (one round trip)."""
        physical = [queue] if count <= 1 else [partitions.name(queue, i, count) for i in range(count)]
        pipe = self.store.client.pipeline(transaction=False)
        for name in physical:
            for status in ACTIVE:
                pipe.zcard(self.store.keys(name).status(status))
        return sum(int(n) for n in pipe.execute())

    def mismatch(self, queue: str, count: int) -> Mismatch | None:
        """The mismatch of ``queue`` configured with ``count`` partitions, None when there is none or
        when the recorded layout is drained (then ``count`` may be recorded)."""
        recorded = self.recorded(queue)
        if recorded == count:
            return None
        active = self.active_jobs(queue, recorded)
        return Mismatch(queue, recorded, count, active) if active else None

    def ensure(self, queue: str, count: int) -> None:
        """Record ``count`` partitions for ``queue``, unless another number is recorded while its
        layout still holds active jobs: then raise PartitionCountChanged. Once per process and queue."""
        if self._ensured.get(queue) == count:
            return
        client = self.store.client
        if count > 1 and client.hsetnx(self.key, queue, count):
            # The first record: the queue was unpartitioned until now, and its jobs there must be done.
            if not self.active_jobs(queue, 1):
                self._ensured[queue] = count
                return
            client.hdel(self.key, queue)
        problem = self.mismatch(queue, count)
        if problem is not None:
            raise problem.error()
        recorded = self.recorded(queue)
        if recorded != count:
            logger.warning("queue %s: partitions %d -> %d (the old layout holds no active job)", queue, recorded, count)
            if count > 1:
                client.hset(self.key, queue, count)
            else:
                client.hdel(self.key, queue)
        self._ensured[queue] = count
