"""Read-only views of the queue state for the Python API and the admin.

Every method costs a bounded number of round trips and never scans a stream or the keyspace:
counts come from ZCARD, pages from ZREVRANGE with offsets, jobs from pipelined HGETALL.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any, cast

import redis

from tempotask_django import serialization
from tempotask_django.job import Job, JobStatus
from tempotask_django.storage import presence
from tempotask_django.storage.keys import CONSUMER_GROUP, GlobalKeys, QueueKeys
from tempotask_django.storage.scripts import ScriptRunner

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

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _age(now_ms: int, since_ms: int | None) -> float | None:
    return None if since_ms is None else max(0.0, (int(now_ms) - int(since_ms)) / 1000)


def _job_at(queue: str, job_id: str, fields: dict[str, str]) -> Job:
    """The job whose record is at ``queue``'s key for ``job_id``: the key, not a field a damaged record
    may lack, says which job it is (pages link to it by queue and id)."""
    return Job.from_fields({**fields, "queue": queue, "id": job_id})


def _decode_list(items: Iterable[str]) -> list[dict[str, Any]]:
    decoded = []
    for item in items:
        try:
            value = serialization.decode(item)
        except ValueError:
            value = {"message": item}
        decoded.append(value if isinstance(value, dict) else {"message": value})
    return decoded


class QueueInspector:
    """The read side of the store, reached as ``store.inspect``: counts, pages of jobs, workers."""

    def __init__(self, client: redis.Redis, prefix: str, scripts: ScriptRunner) -> None:
        self.client = client
        self.prefix = prefix
        self.global_keys = GlobalKeys(prefix)
        self.scripts = scripts

    def keys(self, queue: str) -> QueueKeys:
        return QueueKeys(self.prefix, queue)

    def known_queues(self, extra: Iterable[str] = ()) -> list[str]:
        """Queues that ever had a job, plus ``extra`` (e.g. from settings and the task registry)."""
        return sorted(set(cast(set[str], self.client.smembers(self.global_keys.queues))) | set(extra))

    def find_queue(self, job_id: str, queues: Iterable[str]) -> str | None:
        """The first of ``queues`` holding a job ``job_id`` (one round trip)."""
        return next(iter(self.find_queues(job_id, queues)), None)

    def find_queues(self, job_id: str, queues: Iterable[str]) -> list[str]:
        """Every one of ``queues`` holding a job ``job_id``, in the order given (one round trip).

        A job id is unique within its queue only: each queue's keys share one hash slot (Redis
        Cluster), so no index spans queues.
        """
        candidates = list(queues)
        pipe = self.client.pipeline(transaction=False)
        for queue in candidates:
            pipe.exists(self.keys(queue).job(job_id))
        return [queue for queue, exists in zip(candidates, pipe.execute(), strict=True) if exists]

    def get_job(self, queue: str, job_id: str) -> Job | None:
        """The job with its logs and errors, or None when it does not exist."""
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
        return int(self.client.zcard(self.keys(queue).status(status)))

    def list_job_ids(self, queue: str, status: str, offset: int = 0, limit: int = 50) -> list[str]:
        """Ids of one status, newest first (waiting: last to run first)."""
        if JobStatus.parse(status) is None:
            expected = ", ".join(JobStatus)
            raise ValueError(f"unknown status {status!r}; expected one of {expected}")
        return cast(list[str], self.client.zrevrange(self.keys(queue).status(status), offset, offset + limit - 1))

    def list_jobs(self, queue: str, status: str, offset: int = 0, limit: int = 50) -> list[Job]:
        """A page of jobs of one status, newest first."""
        return self.get_jobs(queue, self.list_job_ids(queue, status, offset, limit))

    def queue_stats(self, queue: str) -> QueueStats:
        """Counts per status, consumers, paused flag and waiting ages of one queue (1 round trip)."""
        return self.queue_stats_many([queue])[0]

    def queue_stats_many(self, queues: Sequence[str]) -> list[QueueStats]:
        """``queue_stats`` of several queues in one round trip (one read-only script per queue)."""
        calls = [("stats", queue, [CONSUMER_GROUP, MAX_PRIORITY_BANDS]) for queue in queues]
        stats = []
        for queue, reply in zip(queues, self.scripts.pipeline(calls) if calls else [], strict=True):
            now, *counts, paused, consumers, next_since, oldest_since, parked = reply
            # stats.lua counts the statuses in JobStatus order.
            by_status = {status.value: int(count) for status, count in zip(JobStatus, counts, strict=True)}
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
        one round trip; their number grows with the task names, not with the jobs."""
        pipe = self.client.pipeline(transaction=False)
        for queue in queues:
            pipe.hgetall(self.keys(queue).metrics)
        return {
            queue: {field: int(value) for field, value in fields.items() if value.lstrip("-").isdigit()}
            for queue, fields in zip(queues, pipe.execute() if queues else [], strict=True)
        }

    def minute_totals(self, queues: Sequence[str], minutes: int = 60) -> list[dict[str, int]]:
        """Completed/failed/retried/cancelled counts per minute of the last ``minutes`` minutes, summed over
        ``queues`` (one round trip), oldest minute first."""
        seconds, _ = self.client.time()
        current = int(seconds) // 60
        wanted = list(range(current - minutes + 1, current + 1))
        kinds = ("completed", "failed", "retried", "cancelled")
        fields = [QueueKeys.minute_field(minute, kind) for minute in wanted for kind in kinds]
        pipe = self.client.pipeline(transaction=False)
        for queue in queues:
            pipe.hmget(self.keys(queue).minutes, fields)
        replies = pipe.execute() if queues else []
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
        were found in the window, whether the window covered the whole status).
        """
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
