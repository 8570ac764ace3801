"""RedisStore: every operation the engine performs on Redis, one method each.

State changes are Lua scripts (see lua/); each is atomic and costs one round trip. Batches
(bulk enqueue, finishing several jobs) are pipelined: one round trip for the whole batch.
Read-only views for the API and the admin live in ``inspect.py`` (QueueInspector).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.exceptions import NoScriptError, ResponseError

from tempotask_django.conf import Settings
from tempotask_django.storage.inspect import QueueInspector
from tempotask_django.storage.keys import CONSUMER_GROUP, GlobalKeys, QueueKeys
from tempotask_django.storage.scripts import Scripts

logger = logging.getLogger("tempotask")


@dataclass(frozen=True)
class JobSpec:
    """Everything needed to enqueue one job (already validated and serialized)."""

    id: str
    name: str
    queue: str
    data: str  # JSON text
    priority: int = 0
    max_attempts: int = 1
    retry_delay: float = 0.0
    backoff: str = "fixed"
    parent_id: str = ""
    origin: str = ""
    delay_ms: int = 0
    run_at_ms: int = 0

    def script_args(self) -> list[Any]:
        fields = [
            "name", self.name, "queue", self.queue, "data", self.data,
            "max_attempts", self.max_attempts, "retry_delay", self.retry_delay, "backoff", self.backoff,
        ]  # fmt: skip
        if self.parent_id:
            fields += ["parent_id", self.parent_id]
        if self.origin:
            fields += ["origin", self.origin]
        return [self.id, self.priority, self.delay_ms, self.run_at_ms, *fields]


@dataclass
class ClaimResult:
    """What one claim call gave a worker."""

    jobs: list[dict[str, str]]
    next_due_ms: int  # ms until the next delayed job is due, -1 when none
    wake_id: str  # newest doorbell entry; block on entries after it
    paused: bool


@dataclass
class ReclaimResult:
    jobs: list[dict[str, str]]
    cursor: str
    poisoned: int
    alone: bool = False  # the one job returned is a suspect: run nothing else beside it
    suspects: int = 0  # suspects left for a worker running nothing


@dataclass(frozen=True)
class Finish:
    """One finished attempt, to be recorded (possibly in a batch with others)."""

    queue: str
    entry_id: str
    job_id: str
    succeeded: bool
    payload: str  # result JSON on success, error JSON on failure
    retry_delay_ms: int = -1  # failures only: -1 fails for good


@dataclass
class FinishOutcome:
    accepted: bool
    status: str = ""
    reason: str = ""


@dataclass
class _QueueCall:
    keys: list[str]
    base: str = field(default="")


def _pairs(flat: Sequence[str]) -> dict[str, str]:
    return dict(zip(flat[0::2], flat[1::2], strict=False))


class RedisStore(QueueInspector):
    """All reads and writes of tempotask's Redis state."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.prefix = settings.key_prefix
        self.global_keys = GlobalKeys(self.prefix)
        self.scripts = Scripts(client)
        self._queue_calls: dict[str, _QueueCall] = {}
        self._registered_queues: set[str] = set()

    def close(self) -> None:
        self.client.close()

    # -- keys -------------------------------------------------------------------------------
    def keys(self, queue: str) -> QueueKeys:
        return QueueKeys(self.prefix, queue)

    def _call(self, queue: str) -> _QueueCall:
        call = self._queue_calls.get(queue)
        if call is None:
            k = self.keys(queue)
            keys = [k.waiting, k.delayed, k.processing, k.completed, k.failed, k.stream, k.wake, k.seq, k.paused]
            call = self._queue_calls[queue] = _QueueCall(keys, f"{k.base}:")
        return call

    def _run(self, script_name: str, queue: str, *args: Any, client: Any = None) -> Any:
        call = self._call(queue)
        script = getattr(self.scripts, script_name)
        return script(keys=call.keys, args=[call.base, *args], client=client or self.client)

    def _history_size(self, queue: str) -> int:
        return self.settings.for_queue(queue).max_jobs_per_status

    # -- producers --------------------------------------------------------------------------
    def _register_queue(self, queue: str) -> None:
        if queue not in self._registered_queues:
            self.client.sadd(self.global_keys.queues, queue)
            self._registered_queues.add(queue)

    def enqueue(self, spec: JobSpec) -> tuple[bool, str]:
        """Add a job unless one with its id is active. Returns (added, status)."""
        self._register_queue(spec.queue)
        added, status = self._run("enqueue", spec.queue, *spec.script_args())
        return bool(added), status

    def enqueue_many(self, specs: Sequence[JobSpec]) -> list[tuple[bool, str]]:
        """Enqueue a batch in one round trip; each job is still atomic and deduplicated."""
        for queue in {spec.queue for spec in specs}:
            self._register_queue(queue)
        calls = [("enqueue", spec.queue, spec.script_args()) for spec in specs]
        return [(bool(added), status) for added, status in self._pipeline(calls)]

    def _pipeline(self, calls: Sequence[tuple[str, str, Sequence[Any]]]) -> list[Any]:
        """Run several scripts in one round trip (EVALSHA; scripts loaded once on NOSCRIPT)."""
        for attempt in range(2):
            pipe = self.client.pipeline(transaction=False)
            for name, queue, args in calls:
                call = self._call(queue)
                sha = getattr(self.scripts, name).sha
                pipe.evalsha(sha, len(call.keys), *call.keys, call.base, *args)
            results = pipe.execute(raise_on_error=False)
            if attempt == 0 and any(isinstance(r, NoScriptError) for r in results):
                self._load_scripts({name for name, _, _ in calls})
                continue
            for result in results:
                if isinstance(result, Exception):
                    raise result
            return results
        raise AssertionError("unreachable")

    def _load_scripts(self, names: Iterable[str]) -> None:
        for name in names:
            script = getattr(self.scripts, name)
            script.sha = self.client.script_load(script.script)

    # -- workers ----------------------------------------------------------------------------
    def claim(self, queue: str, consumer: str, count: int) -> ClaimResult:
        """Start up to ``count`` jobs of ``queue`` for ``consumer`` (promotes due delayed jobs first)."""
        jobs, next_due, wake_id, paused = self._run(
            "claim", queue, CONSUMER_GROUP, consumer, count, self._history_size(queue)
        )
        return ClaimResult([_pairs(job) for job in jobs], int(next_due), wake_id, bool(paused))

    def reclaim(
        self, queue: str, consumer: str, count: int, cursor: str = "0-0", *, idle: bool = False
    ) -> ReclaimResult:
        """Take over up to ``count`` jobs whose workers stopped renewing their leases.

        A job taken over twice already (a suspect) is only taken by an ``idle`` worker (running
        nothing), and then alone: ``alone`` tells the worker to start nothing else beside it.
        """
        min_idle_ms = int(self.settings.stalled_timeout * 1000)
        jobs, next_cursor, poisoned, alone, suspects = self._run(
            "reclaim", queue, CONSUMER_GROUP, consumer, min_idle_ms, cursor, count,
            self.settings.max_deliveries, self._history_size(queue), 1 if idle else 0,
        )  # fmt: skip
        return ReclaimResult([_pairs(job) for job in jobs], next_cursor, int(poisoned), bool(alone), int(suspects))

    def finish(self, consumer: str, finishes: Sequence[Finish]) -> list[FinishOutcome]:
        """Record finished attempts in one round trip; each is refused if ``consumer`` lost the job."""
        calls = []
        for item in finishes:
            size = self._history_size(item.queue)
            if item.succeeded:
                args = [CONSUMER_GROUP, consumer, item.entry_id, item.job_id, item.payload, size]
                calls.append(("complete", item.queue, args))
            else:
                args = [CONSUMER_GROUP, consumer, item.entry_id, item.job_id, item.payload, item.retry_delay_ms, size]
                calls.append(("fail", item.queue, args))
        outcomes = []
        for item, reply in zip(finishes, self._pipeline(calls), strict=True):
            if int(reply[0]) == 1:
                status = "completed" if item.succeeded else reply[1]
                outcomes.append(FinishOutcome(True, status=status))
            else:
                outcomes.append(FinishOutcome(False, reason=reply[1]))
        return outcomes

    def renew(self, queue: str, consumer: str, entry_ids: Sequence[str]) -> list[str]:
        """Renew leases; returns the entry ids this consumer no longer owns."""
        if not entry_ids:
            return []
        return list(self._run("renew", queue, CONSUMER_GROUP, consumer, *entry_ids))

    def wait_for_jobs(self, wake_ids: dict[str, str], timeout_ms: int) -> bool:
        """Block until a job is enqueued in one of the queues (after ``wake_ids``) or the timeout."""
        if timeout_ms <= 0:
            return False
        streams = {self.keys(queue).wake: last for queue, last in wake_ids.items()}
        reply = self.client.xread(streams, count=1, block=max(1, int(timeout_ms)))
        return bool(reply)

    def forget_consumers(self, queue: str, min_idle_ms: int, only: str = "") -> list[str]:
        """Delete idle consumers without pending entries (checked atomically)."""
        return list(self._run("forget_consumers", queue, CONSUMER_GROUP, min_idle_ms, only))

    def append_log(self, queue: str, job_id: str, message_json: str) -> bool:
        return bool(self._run("log", queue, job_id, message_json))

    # -- management -------------------------------------------------------------------------
    def delete_job(self, queue: str, job_id: str) -> str | None:
        """Delete a job in any status. Returns the status it had, None when it did not exist."""
        return self._run("delete", queue, CONSUMER_GROUP, job_id) or None

    def retry_job(self, queue: str, job_id: str) -> str | None:
        """Queue a failed or delayed job again now. Returns the status it had (None if missing)."""
        return self._run("retry", queue, job_id) or None

    def purge(self, queue: str, status: str, batch: int = 500) -> int:
        """Delete every completed or failed job of a queue, in short batches. Returns the count."""
        total = 0
        while True:
            deleted = int(self._run("purge", queue, status, batch))
            total += deleted
            if deleted < batch:
                return total

    def pause_queue(self, queue: str) -> None:
        """Workers stop starting jobs from ``queue``; running jobs finish."""
        self._register_queue(queue)
        self.client.set(self.keys(queue).paused, "1")

    def resume_queue(self, queue: str) -> None:
        self.client.delete(self.keys(queue).paused)

    def register_worker(self, worker_id: str, info: dict[str, Any], ttl: float) -> None:
        """Publish a worker's heartbeat and info; both vanish if it stops renewing them."""
        key = self.global_keys.worker(worker_id)
        now = self.server_time_ms()
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(key, mapping={**{k: str(v) for k, v in info.items()}, "heartbeat": now})
        pipe.pexpire(key, int(ttl * 1000))
        pipe.zadd(self.global_keys.workers, {worker_id: now})
        pipe.zremrangebyscore(self.global_keys.workers, "-inf", now - int(ttl * 1000))
        pipe.execute()

    def unregister_worker(self, worker_id: str) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.delete(self.global_keys.worker(worker_id))
        pipe.zrem(self.global_keys.workers, worker_id)
        pipe.execute()

    def server_time_ms(self) -> int:
        seconds, micros = self.client.time()
        return int(seconds) * 1000 + int(micros) // 1000

    def eviction_warning(self) -> str | None:
        """A warning when Redis may evict job keys under memory pressure (None when safe/unknown)."""
        try:
            policy = self.client.config_get("maxmemory-policy").get("maxmemory-policy")
        except ResponseError:  # CONFIG refused (ACLs, managed Redis): nothing we can check
            return None
        if policy and policy != "noeviction":
            return (
                f"Redis maxmemory-policy is {policy!r}: under memory pressure Redis may delete job keys "
                "silently. Set it to 'noeviction' for the database tempotask uses."
            )
        return None
