"""Read-only views of the queue state for the Python API and the admin.

Every method costs a bounded number of round trips and never scans a stream or the keyspace:
counts come from ZCARD, pages from ZREVRANGE with offsets, jobs from pipelined HGETALL.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tempotask_django.job import Job, JobStatus
from tempotask_django.storage.keys import CONSUMER_GROUP, STATUS_KEYS

if TYPE_CHECKING:
    import redis

    from tempotask_django.storage.keys import GlobalKeys, QueueKeys


@dataclass
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

    @property
    def total(self) -> int:
        return self.waiting + self.processing + self.delayed + self.completed + self.failed

    def as_dict(self) -> dict[str, Any]:
        return {
            "queue": self.queue, "waiting": self.waiting, "processing": self.processing,
            "delayed": self.delayed, "completed": self.completed, "failed": self.failed,
            "consumers": self.consumers, "paused": self.paused, "next_job_age": self.next_job_age,
        }  # fmt: skip


def _decode_list(items: Iterable[str]) -> list[dict[str, Any]]:
    decoded = []
    for item in items:
        try:
            value = json.loads(item)
        except ValueError:
            value = {"message": item}
        decoded.append(value if isinstance(value, dict) else {"message": value})
    return decoded


def _int(value: Any) -> int | None:
    """An integer field of a record, None when missing or damaged (records may be written by others)."""
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class QueueInspector:
    """Mixin of RedisStore: the read side."""

    client: redis.Redis
    global_keys: GlobalKeys

    def keys(self, queue: str) -> QueueKeys:  # pragma: no cover - provided by RedisStore
        raise NotImplementedError

    def known_queues(self, extra: Iterable[str] = ()) -> list[str]:
        """Queues that ever had a job, plus ``extra`` (e.g. from settings and the task registry)."""
        return sorted(set(self.client.smembers(self.global_keys.queues)) | set(extra))

    def find_queue(self, job_id: str, queues: Iterable[str]) -> str | None:
        """The queue holding ``job_id`` among ``queues`` (one round trip)."""
        candidates = list(queues)
        pipe = self.client.pipeline(transaction=False)
        for queue in candidates:
            pipe.exists(self.keys(queue).job(job_id))
        for queue, exists in zip(candidates, pipe.execute(), strict=True):
            if exists:
                return queue
        return None

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
        job = Job.from_fields(fields)
        job.logs = _decode_list(logs)
        job.errors = _decode_list(errors)
        return job

    def get_jobs(self, queue: str, job_ids: Iterable[str]) -> list[Job]:
        """Several jobs in one round trip (without logs and errors); missing ones are skipped."""
        ids = list(job_ids)
        pipe = self.client.pipeline(transaction=False)
        for job_id in ids:
            pipe.hgetall(self.keys(queue).job(job_id))
        return [Job.from_fields(fields) for fields in pipe.execute() if fields]

    def count_jobs(self, queue: str, status: str) -> int:
        return int(self.client.zcard(self.keys(queue).status(status)))

    def list_job_ids(self, queue: str, status: str, offset: int = 0, limit: int = 50) -> list[str]:
        """Ids of one status, newest first (waiting: last to run first)."""
        if status not in STATUS_KEYS:
            raise ValueError(f"unknown status {status!r}; expected one of {STATUS_KEYS}")
        return list(self.client.zrevrange(self.keys(queue).status(status), offset, offset + limit - 1))

    def list_jobs(self, queue: str, status: str, offset: int = 0, limit: int = 50) -> list[Job]:
        """A page of jobs of one status, newest first."""
        return self.get_jobs(queue, self.list_job_ids(queue, status, offset, limit))

    def queue_stats(self, queue: str) -> QueueStats:
        """Counts per status, consumers, paused flag and the age of the next job (2 round trips)."""
        k = self.keys(queue)
        pipe = self.client.pipeline(transaction=False)
        for status in STATUS_KEYS:
            pipe.zcard(k.status(status))
        pipe.exists(k.paused)
        pipe.zrange(k.waiting, 0, 0)
        pipe.time()
        *counts, paused, head, (seconds, micros) = pipe.execute()
        consumers = self._consumer_count(k.stream)
        age = None
        if head:
            enqueued = _int(self.client.hget(k.job(head[0]), "enqueued_at"))
            if enqueued is not None:
                age = max(0.0, (int(seconds) * 1000 + int(micros) // 1000 - enqueued) / 1000)
        by_status = dict(zip(STATUS_KEYS, (int(c) for c in counts), strict=True))
        return QueueStats(queue=queue, consumers=consumers, paused=bool(paused), next_job_age=age, **by_status)

    def _consumer_count(self, stream: str) -> int:
        try:
            groups = self.client.xinfo_groups(stream)
        except Exception:  # no stream yet: nothing has run
            return 0
        return sum(int(g["consumers"]) for g in groups if g["name"] == CONSUMER_GROUP)

    def is_paused(self, queue: str) -> bool:
        return bool(self.client.exists(self.keys(queue).paused))

    def minute_stats(self, queue: str, minutes: int = 60) -> list[dict[str, int]]:
        """Completed/failed/retried counts per minute for the last ``minutes`` minutes, oldest first."""
        seconds, _ = self.client.time()
        current = int(seconds) // 60
        wanted = list(range(current - minutes + 1, current + 1))
        pipe = self.client.pipeline(transaction=False)
        for minute in wanted:
            pipe.hgetall(self.keys(queue).stats(minute))
        series = []
        for minute, counts in zip(wanted, pipe.execute(), strict=True):
            series.append({
                "minute": minute * 60,
                "completed": int(counts.get("completed", 0)),
                "failed": int(counts.get("failed", 0)),
                "retried": int(counts.get("retried", 0)),
            })  # fmt: skip
        return series

    def list_workers(self) -> list[dict[str, str]]:
        """Live workers (their heartbeat key has not expired), most recent heartbeat first."""
        ids = self.client.zrevrange(self.global_keys.workers, 0, -1)
        pipe = self.client.pipeline(transaction=False)
        for worker_id in ids:
            pipe.hgetall(self.global_keys.worker(worker_id))
        return [{"id": wid, **info} for wid, info in zip(ids, pipe.execute(), strict=True) if info]

    def status_of(self, queue: str, job_id: str) -> JobStatus | None:
        status = self.client.hget(self.keys(queue).job(job_id), "status")
        return JobStatus(status) if status in JobStatus._value2member_map_ else None
