"""Partitioned queues: one logical queue (``QUEUES = {"emails": {"PARTITIONS": 8}}``) stored as N
physical queues, each with its own keys under its own hash tag, so a Redis Cluster spreads it over
its masters.

Each partition is an ordinary queue to the storage code, named ``<queue>~<i>of<n>`` (``emails~3of8``).
Queue names cannot hold ``~`` (validation.NAME_PATTERN), so a partition never collides with a
queue of the user's, and its name says how many partitions it belongs with: a queue whose N changes
gets new partitions instead of sharing keys with the old ones (see ``record_count``).

The logical name is mapped at the edges only: the producer puts a job in the partition its id maps
to (``for_id``: CRC32 of the id, so a given id always lands in the same partition and dedup by id
stays exact; generated ids are random, so jobs without an id spread evenly); a worker serving the
queue serves every partition (``expand``); the API finds a job by id in its partition; the admin sums
the partitions and shows each.

The hash tag of partition i of n is chosen so that its slot lies in the i-th of n equal bands of the
16384 slots (``hash_tag``): a cluster whose masters hold equal slot ranges, as ``redis-cli --cluster
create`` makes them, gets an equal share of the partitions on each master, instead of the uneven
draw plain names would give (six names over three masters land 2/2/2 one time in eight).
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

if TYPE_CHECKING:
    from tempotask_django.conf import Settings

SEPARATOR = "~"
# The most partitions one queue may have: bounds the keys a worker blocks on and the admin reads.
MAX_PARTITIONS = 1024


@dataclass(frozen=True)
class Partition:
    """What a physical partition name says: its queue, its index and how many partitions there are."""

    queue: str
    index: int
    count: int


def name(queue: str, index: int, count: int) -> str:
    """The physical queue of partition ``index`` (0-based) of ``count`` of ``queue``: ``emails~3of8``."""
    return f"{queue}{SEPARATOR}{index}of{count}"


@functools.lru_cache(maxsize=4096)
def parse(physical: str) -> Partition | None:
    """The partition ``physical`` names, or None for an ordinary queue name."""
    queue, separator, rest = physical.rpartition(SEPARATOR)
    if not separator:
        return None
    index, of, count = rest.partition("of")
    if not (of and index.isdigit() and count.isdigit() and int(index) < int(count)):
        return None
    return Partition(queue, int(index), int(count))


def logical(queue: str) -> str:
    """The queue a physical queue belongs to (itself for an ordinary queue)."""
    partition = parse(queue)
    return partition.queue if partition else queue


def count_of(settings: Settings, queue: str) -> int:
    """How many partitions ``queue`` (a logical name) has: its PARTITIONS, 1 when not partitioned."""
    return settings.for_queue(queue).partitions


def expand(settings: Settings, queue: str) -> list[str]:
    """The physical queues of ``queue``: its partitions in order, or ``[queue]`` when not partitioned
    (or when ``queue`` is itself a partition)."""
    if parse(queue) is not None:
        return [queue]
    count = count_of(settings, queue)
    return [queue] if count <= 1 else [name(queue, i, count) for i in range(count)]


def index_for(job_id: str, count: int) -> int:
    """The partition of ``job_id`` among ``count``: CRC32 of the id (stable across processes and
    versions, unlike ``hash()``)."""
    return zlib.crc32(job_id.encode()) % count


def for_id(settings: Settings, queue: str, job_id: str) -> str:
    """The physical queue holding job ``job_id`` of ``queue`` (``queue`` itself when not partitioned)."""
    if parse(queue) is not None:
        return queue
    count = count_of(settings, queue)
    return queue if count <= 1 else name(queue, index_for(job_id, count), count)


def configured_count(raw: Any, queue: str) -> int:
    """PARTITIONS of ``queue`` in a raw TEMPOTASK value (1 when absent or not a valid number: the
    settings check reports that), for code that reads the raw setting (cron schedules)."""
    queues = raw.get("QUEUES") if isinstance(raw, dict) else None
    overrides = queues.get(queue) if isinstance(queues, dict) else None
    count = overrides.get("PARTITIONS", 1) if isinstance(overrides, dict) else 1
    return count if type(count) is int and 1 <= count <= MAX_PARTITIONS else 1


def for_schedule(raw: Any, queue: str, schedule: str) -> str:
    """The physical queue of cron schedule ``schedule`` whose jobs go to ``queue``: the partition its
    name maps to. Firing a tick records it and enqueues its job in one script, on one hash slot, so a
    schedule and all its jobs live in that one partition (workers serve every partition; a lookup by
    id finds them there too)."""
    count = configured_count(raw, queue) if parse(queue) is None else 1
    return queue if count <= 1 else name(queue, index_for(schedule, count), count)


@functools.lru_cache(maxsize=4096)
def hash_tag(physical: str) -> str:
    """What goes between the braces of ``physical``'s keys (keys.QueueKeys.base).

    An ordinary queue's tag is its name. A partition's is its name when the name's slot already lies
    in the partition's band, else its name, ``~`` and the first number that puts it there (about n
    CRC16 computations, once per process). Tags stay distinct: a partition name holds one ``~``.
    """
    partition = parse(physical)
    if partition is None:
        return physical
    low = partition.index * REDIS_CLUSTER_HASH_SLOTS // partition.count
    high = (partition.index + 1) * REDIS_CLUSTER_HASH_SLOTS // partition.count
    candidate, salt = physical, 0
    while not low <= key_slot(candidate.encode()) < high:
        salt += 1
        candidate = f"{physical}{SEPARATOR}{salt}"
    return candidate
