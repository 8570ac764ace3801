"""Read-only views of the queue state for the Python API and the admin.

Every method costs a bounded number of round trips and never scans a stream or the keyspace:
counts come from ZCARD, pages from ZREVRANGE with offsets, jobs from pipelined HGETALL.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, cast

import redis

from tempotask_django import partitions, serialization
from tempotask_django.job import Job, JobStatus
from tempotask_django.storage import presence
from tempotask_django.storage.keys import CONSUMER_GROUP, GlobalKeys, QueueKeys
from tempotask_django.storage.scripts import ScriptRunner

if TYPE_CHECKING:
    from tempotask_django.conf import Settings

# Priority bands stats.lua visits looking for the oldest waiting job (each visit is one O(log n) read).
MAX_PRIORITY_BANDS = 100
# Job names read per round trip when filtering a status by task name.
NAME_SCAN_CHUNK = 500


@dataclasses.dataclass
class QueueStats:
    """Counts of one queue, as ``queue_stats()`` returns them."""

    queue: str
    waiting: int
    processing: int
    delayed: int
    completed: int
    failed: int
    consumers: int
    paused: bool
    next_job_age: float | None  # seconds the job that runs next has been waiting
    oldest_job_age: float | None = None  # seconds the longest-waiting job has been waiting
    cancelled: int = 0
    parked: int = 0  # of the waiting jobs, those held back by a rate or concurrency limit
    # A partitioned queue's stats are the sums over its partitions, whose own stats are listed here.
    partitions: list[QueueStats] = dataclasses.field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _age(now_ms: int, since_ms: int | None) -> float | None:
    return None if since_ms is None else max(0.0, (int(now_ms) - int(since_ms)) / 1000)


def _job_at(queue: str, job_id: str, fields: dict[str, str]) -> Job:
    """The job whose record is at ``queue``'s key for ``job_id``: the key, not a field a damaged record
    may lack, says which job it is (pages link to it by queue and id)."""
    return Job.from_fields({**fields, "queue": queue, "id": job_id})


def _finish_order(job: Job) -> float:
    """When a job entered its status, as far as its record says (to merge partitions' pages)."""
    moment = job.finished_at or job.started_at or job.enqueued_at
    return moment.timestamp() if moment is not None else 0.0


def _decode_list(items: Iterable[str]) -> list[dict[str, Any]]:
    decoded = []
    for item in items:
        try:
            value = serialization.decode(item)
        except ValueError:
            value = {"message": item}
        decoded.append(value if isinstance(value, dict) else {"message": value})
    return decoded


def _merged(queue: str, parts: list[QueueStats]) -> QueueStats:
    """One partitioned queue's stats: counts summed over its partitions, the oldest ages, paused when
    every partition is, and the consumers of the partition that has most (a worker serving the queue
    is a consumer of each)."""
    ages = [part.oldest_job_age for part in parts if part.oldest_job_age is not None]
    nexts = [part.next_job_age for part in parts if part.next_job_age is not None]
    counts: dict[str, Any] = {status.value: sum(getattr(part, status.value) for part in parts) for status in JobStatus}
    return QueueStats(
        queue=queue,
        consumers=max((part.consumers for part in parts), default=0),
        paused=all(part.paused for part in parts),
        next_job_age=max(nexts, default=None),
        oldest_job_age=max(ages, default=None),
        parked=sum(part.parked for part in parts),
        partitions=parts,
        **counts,
    )


class QueueInspector:
    """The read side of the store, reached as ``store.inspect``: counts, pages of jobs, workers.

    With ``settings``, a partitioned queue's logical name (partitions.py) reads all its partitions:
    its stats are their sums, its pages merge theirs, and a job is looked for in the partition its id
    maps to first.
    """

    def __init__(
        self, client: redis.Redis, prefix: str, scripts: ScriptRunner, settings: Settings | None = None
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.global_keys = GlobalKeys(prefix)
        self.scripts = scripts
        self.settings = settings

    def keys(self, queue: str) -> QueueKeys:
        return QueueKeys(self.prefix, queue)

    def physical(self, queue: str) -> list[str]:
        """The queues holding ``queue``'s jobs: its partitions, or itself."""
        return partitions.expand(self.settings, queue) if self.settings is not None else [queue]

    def candidates(self, queue: str, job_id: str) -> list[str]:
        """Where job ``job_id`` of ``queue`` may be, most likely first: the partition its id maps to,
        then the others (a cron schedule's jobs live in the schedule's partition)."""
        found = self.physical(queue)
        if len(found) == 1 or self.settings is None:
            return found
        first = partitions.for_id(self.settings, queue, job_id)
        return [first, *(other for other in found if other != first)]

    def locate(self, queue: str, job_id: str) -> str:
        """The physical queue holding job ``job_id`` of ``queue`` (one round trip for a partitioned
        queue, none otherwise); the partition its id maps to when no partition holds it."""
        found = self.candidates(queue, job_id)
        if len(found) == 1:
            return found[0]
        return next(iter(self._holding(job_id, found)), found[0])

    def known_queues(self, extra: Iterable[str] = ()) -> list[str]:
        """Queues that ever had a job, plus ``extra`` (e.g. from settings and the task registry); a
        partitioned queue once, by its name."""
        stored = cast(set[str], self.client.smembers(self.global_keys.queues))
        return sorted({partitions.logical(queue) for queue in stored} | set(extra))

    def find_queue(self, job_id: str, queues: Iterable[str]) -> str | None:
        """The first of ``queues`` holding a job ``job_id`` (one round trip)."""
        return next(iter(self.find_queues(job_id, queues)), None)

    def find_queues(self, job_id: str, queues: Iterable[str]) -> list[str]:
        """Every one of ``queues`` holding a job ``job_id``, in the order given (one round trip).

        A job id is unique within its queue only: each queue's keys share one hash slot (Redis
        Cluster), so no index spans queues.
        """
        where = {queue: self.candidates(queue, job_id) for queue in queues}
        holding = set(self._holding(job_id, [physical for found in where.values() for physical in found]))
        return [queue for queue, found in where.items() if holding.intersection(found)]

    def _holding(self, job_id: str, queues: Sequence[str]) -> list[str]:
        """Those of the physical ``queues`` holding a job ``job_id``, in order (one round trip)."""
        pipe = self.client.pipeline(transaction=False)
        for queue in queues:
            pipe.exists(self.keys(queue).job(job_id))
        return [queue for queue, exists in zip(queues, pipe.execute(), strict=True) if exists]

    def get_job(self, queue: str, job_id: str) -> Job | None:
        """The job with its logs and errors, or None when it does not exist. A partitioned queue's job
        is read from the partition holding it (its ``queue`` names that partition)."""
        queue = self.locate(queue, job_id)
        k = self.keys(queue)
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(k.job(job_id))
        pipe.lrange(k.logs(job_id), 0, -1)
        pipe.lrange(k.errors(job_id), 0, -1)
        fields, logs, errors = pipe.execute()
        if not fields:
            return None
        job = _job_at(queue, job_id, fields)
        job.logs = _decode_list(logs)
        job.errors = _decode_list(errors)
        return job

    def get_jobs(self, queue: str, job_ids: Iterable[str]) -> list[Job]:
        """Several jobs in one round trip (without logs and errors); missing ones are skipped."""
        ids = list(job_ids)
        pipe = self.client.pipeline(transaction=False)
        for job_id in ids:
            pipe.hgetall(self.keys(queue).job(job_id))
        return [_job_at(queue, job_id, fields) for job_id, fields in zip(ids, pipe.execute(), strict=True) if fields]

    def count_jobs(self, queue: str, status: str) -> int:
        found = self.physical(queue)
        if len(found) == 1:
            return int(self.client.zcard(self.keys(queue).status(status)))
        pipe = self.client.pipeline(transaction=False)
        for physical in found:
            pipe.zcard(self.keys(physical).status(status))
        return sum(int(count) for count in pipe.execute())

    def list_job_ids(self, queue: str, status: str, offset: int = 0, limit: int = 50) -> list[str]:
        """Ids of one status, newest first (waiting: last to run first)."""
        return [job_id for _, job_id in self._page(queue, status, offset, limit)]

    def _page(self, queue: str, status: str, offset: int, limit: int) -> list[tuple[str, str]]:
        """(physical queue, id) of one page of a status, newest first. A partitioned queue's pages
        merge its partitions' by score (time, or priority then order of arrival within a partition):
        each partition is read up to ``offset + limit``, one round trip."""
        if JobStatus.parse(status) is None:
            expected = ", ".join(JobStatus)
            raise ValueError(f"unknown status {status!r}; expected one of {expected}")
        found = self.physical(queue)
        if len(found) == 1:
            ids = cast(list[str], self.client.zrevrange(self.keys(queue).status(status), offset, offset + limit - 1))
            return [(queue, job_id) for job_id in ids]
        pipe = self.client.pipeline(transaction=False)
        for physical in found:
            pipe.zrevrange(self.keys(physical).status(status), 0, offset + limit - 1, withscores=True)
        scored = [
            (score, physical, job_id)
            for physical, members in zip(found, pipe.execute(), strict=True)
            for job_id, score in members
        ]
        scored.sort(key=lambda item: item[0], reverse=True)
        return [(physical, job_id) for _, physical, job_id in scored[offset : offset + limit]]

    def list_jobs(self, queue: str, status: str, offset: int = 0, limit: int = 50) -> list[Job]:
        """A page of jobs of one status, newest first (each names the partition holding it)."""
        page = self._page(queue, status, offset, limit)
        pipe = self.client.pipeline(transaction=False)
        for physical, job_id in page:
            pipe.hgetall(self.keys(physical).job(job_id))
        replies = pipe.execute() if page else []
        pairs = zip(page, replies, strict=True)
        return [_job_at(physical, job_id, fields) for (physical, job_id), fields in pairs if fields]

    def queue_stats(self, queue: str) -> QueueStats:
        """Counts per status, consumers, paused flag and waiting ages of one queue (1 round trip)."""
        return self.queue_stats_many([queue])[0]

    def queue_stats_many(self, queues: Sequence[str]) -> list[QueueStats]:
        """``queue_stats`` of several queues in one round trip (one read-only script per queue, per
        partition of a partitioned queue: its stats sum them, and list each in ``partitions``)."""
        expanded = {queue: self.physical(queue) for queue in queues}
        flat = [physical for found in expanded.values() for physical in found]
        by_physical = dict(zip(flat, self._physical_stats(flat), strict=True))
        return [
            by_physical[found[0]] if found == [queue] else _merged(queue, [by_physical[p] for p in found])
            for queue, found in expanded.items()
        ]

    def _physical_stats(self, queues: Sequence[str]) -> list[QueueStats]:
        calls = [("stats", queue, [CONSUMER_GROUP, MAX_PRIORITY_BANDS]) for queue in queues]
        stats = []
        for queue, reply in zip(queues, self.scripts.pipeline(calls) if calls else [], strict=True):
            now, *counts, paused, consumers, next_since, oldest_since, parked = reply
            # stats.lua counts the statuses in JobStatus order.
            by_status: dict[str, Any] = {
                status.value: int(count) for status, count in zip(JobStatus, counts, strict=True)
            }
            stats.append(
                QueueStats(
                    queue=queue,
                    consumers=int(consumers),
                    paused=bool(paused),
                    next_job_age=_age(now, next_since),
                    oldest_job_age=_age(now, oldest_since),
                    parked=int(parked),
                    **by_status,
                )
            )
        return stats

    def metric_counters(self, queues: Sequence[str]) -> dict[str, dict[str, int]]:
        """Each queue's counters since its first job (field -> count; see lua/lib.lua count_job),
        one round trip; their number grows with the task names, not with the jobs. A partitioned
        queue's are the sums over its partitions."""
        pipe = self.client.pipeline(transaction=False)
        owners = [queue for queue in queues for _ in self.physical(queue)]
        for queue in queues:
            for physical in self.physical(queue):
                pipe.hgetall(self.keys(physical).metrics)
        counters: dict[str, dict[str, int]] = {queue: {} for queue in queues}
        for queue, fields in zip(owners, pipe.execute() if owners else [], strict=True):
            for field, value in fields.items():
                if value.lstrip("-").isdigit():
                    counters[queue][field] = counters[queue].get(field, 0) + int(value)
        return counters

    def minute_totals(self, queues: Sequence[str], minutes: int = 60) -> list[dict[str, int]]:
        """Completed/failed/retried/cancelled counts per minute of the last ``minutes`` minutes, summed over
        ``queues`` (one round trip), oldest minute first."""
        seconds, _ = self.client.time()
        current = int(seconds) // 60
        wanted = list(range(current - minutes + 1, current + 1))
        kinds = ("completed", "failed", "retried", "cancelled")
        fields = [QueueKeys.minute_field(minute, kind) for minute in wanted for kind in kinds]
        pipe = self.client.pipeline(transaction=False)
        flat = [physical for queue in queues for physical in self.physical(queue)]
        for queue in flat:
            pipe.hmget(self.keys(queue).minutes, fields)
        replies = pipe.execute() if flat else []
        series: list[dict[str, int]] = [
            {"minute": minute * 60, "completed": 0, "failed": 0, "retried": 0, "cancelled": 0} for minute in wanted
        ]
        for counts in replies:
            for index, value in enumerate(counts):
                if value is not None and str(value).lstrip("-").isdigit():
                    series[index // len(kinds)][kinds[index % len(kinds)]] += int(value)
        return series

    def find_jobs_by_name(
        self, queue: str, status: str, name: str, offset: int = 0, limit: int = 50, window: int = 5000
    ) -> tuple[list[Job], int, bool]:
        """Jobs of task ``name`` among the newest ``window`` jobs of one status, newest first.

        A status set is ordered by time, not by task, so this reads names in chunks of the
        newest ids and stops after ``window`` ids. Returns (the page of jobs, how many matches
        were found in the window, whether the window covered the whole status). A partitioned
        queue's partitions are each searched this way, their matches merged newest first.
        """
        found = self.physical(queue)
        if len(found) > 1:
            pages = [self.find_jobs_by_name(part, status, name, 0, offset + limit, window) for part in found]
            jobs = sorted((job for page in pages for job in page[0]), key=_finish_order, reverse=True)
            return jobs[offset : offset + limit], sum(page[1] for page in pages), all(page[2] for page in pages)
        key = self.keys(queue).status(status)
        matches: list[str] = []
        scanned = 0
        while scanned < window:
            ids = cast(list[str], self.client.zrevrange(key, scanned, min(scanned + NAME_SCAN_CHUNK, window) - 1))
            if not ids:
                break
            pipe = self.client.pipeline(transaction=False)
            for job_id in ids:
                pipe.hget(self.keys(queue).job(job_id), "name")
            matches += [job_id for job_id, found in zip(ids, pipe.execute(), strict=True) if found == name]
            scanned += len(ids)
        complete = scanned < window or self.client.zcard(key) <= window
        return self.get_jobs(queue, matches[offset : offset + limit]), len(matches), complete

    def children(self, parent_id: str, queues: Sequence[str], limit: int = 100) -> tuple[list[Job], int]:
        """Child jobs of ``parent_id`` in any of ``queues`` (at most ``limit``), and how many there are."""
        queues = [physical for queue in queues for physical in self.physical(queue)]
        pipe = self.client.pipeline(transaction=False)
        for queue in queues:
            key = self.keys(queue).children(parent_id)
            pipe.scard(key)
            pipe.sscan(key, 0, count=limit)
        replies = pipe.execute()
        total = 0
        jobs: list[Job] = []
        for index, queue in enumerate(queues):
            count, (_, ids) = replies[2 * index], replies[2 * index + 1]
            total += int(count)
            wanted = sorted(ids)[: max(0, limit - len(jobs))]
            if wanted:
                jobs += self.get_jobs(queue, wanted)
        jobs.sort(key=lambda job: (job.enqueued_at is None, job.enqueued_at))
        return jobs, total

    def list_workers(self) -> list[dict[str, str]]:
        """Live workers (their heartbeat key has not expired), most recent heartbeat first."""
        return presence.live(self.client, self.global_keys.workers, self.global_keys.worker)

    def get_worker(self, worker_id: str) -> dict[str, str] | None:
        """A live worker's info, or None once its heartbeat expired."""
        info = cast(dict[str, str], self.client.hgetall(self.global_keys.worker(worker_id)))
        return {"id": worker_id, **info} if info else None
