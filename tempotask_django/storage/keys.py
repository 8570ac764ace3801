"""Every Redis key tempotask uses, built from one prefix (default ``tempotask``).

Per queue ``Q`` (all under the hash tag ``{Q}`` so one queue's scripts run on Redis Cluster)::

    P:{Q}:job:<id>          HASH    the job record (see job.py for fields)
    P:{Q}:logs:<id>         LIST    JSON log lines {"t": ms, "message": ...}
    P:{Q}:errors:<id>       LIST    JSON error per failed attempt {"attempt", "type", "message", "traceback", "t"}
    P:{Q}:children:<id>     SET     ids of the child jobs of job <id> that are in queue Q (the
                                    parent may live in another queue); a child leaves it when it is
                                    deleted or trimmed, and the set goes with job <id>
    P:{Q}:cron:<name>       HASH    one cron schedule whose jobs go to Q: its definition (task,
                                    expression, timezone, data...) and state (since, last_tick,
                                    last_run, next_run, last_job_id, paused...); see storage/crons.py
    P:{Q}:cron_history:<name>  LIST  the schedule's events (changes, pauses, ticks skipped or held by
                                    overlap, missed), JSON, the newest 200
    P:{Q}:minutes           HASH    completed/failed/retried/cancelled counts per minute, field
                                    "<minute>:<kind>", kept 2 h (lua/lib.lua count_stat)
    P:{Q}:waiting           ZSET    id -> priority-then-FIFO score (lowest runs first)
    P:{Q}:delayed           ZSET    id -> due time, ms (server clock)
    P:{Q}:processing        ZSET    id -> start time, ms
    P:{Q}:completed         ZSET    id -> finish time, ms (trimmed to MAX_JOBS_PER_STATUS)
    P:{Q}:failed            ZSET    id -> finish time, ms (trimmed to MAX_JOBS_PER_STATUS)
    P:{Q}:cancelled         ZSET    id -> finish time, ms (trimmed to MAX_JOBS_PER_STATUS)
    P:{Q}:stream            STREAM  one entry {job: id} per running job; consumer group "workers"
                                    holds the lease: the pending entry names the owning worker
    P:{Q}:wake              STREAM  doorbell: an entry per enqueue wakes blocked workers (capped)
    P:{Q}:seq               STRING  counter giving FIFO order within one priority
    P:{Q}:paused            STRING  present while the queue is paused
    P:{Q}:metrics           HASH    counters since the queue's first job, per task: completed,
                                    failed, retried, durations by bucket (see lua/lib.lua count_job)
    P:{Q}:limited           ZSET    limit id -> ms when its parked jobs are looked at again
    P:{Q}:qrate             ZSET    the queue's RATE_LIMIT log: stream entry id -> start ms (expires)
    P:{Q}:rate:<limit>      ZSET    a task limit's rate log: stream entry id -> start ms (expires)
    P:{Q}:running:<limit>   ZSET    a task limit's running jobs: job id -> start ms
    P:{Q}:parked:<limit>    ZSET    a task limit's jobs over the limit (status waiting): id -> waiting
                                    score (see lua/limits.lua; <limit> is the task name, or the task
                                    name, a space and its limit_key value)
    P:{Q}:listed            STRING  present once the queue's name is in P:queues: set only after
                                    that SADD answered (see RedisStore.registered_again)
    P:{Q}:reply:<rid>       STRING  the stored reply of script call <rid>, returned to a resend of
                                    that call instead of running it twice (lua/once.lua); deleted
                                    once the caller has the reply (storage/replies.py), else
                                    expires after 5 minutes

A partition of a partitioned queue (``Q~<i>of<n>``, see partitions.py) is a queue of its own with
these keys; its hash tag is its name, possibly followed by ``~`` and a number that puts its slot in
its band of the slot space (partitions.hash_tag).

Global::

    P:queues                SET     every queue holding something (a delete or purge that empties a
                                    queue takes it out; its next job puts it back)
    P:workers               ZSET    worker id -> last heartbeat, ms
    P:worker:<id>           HASH    worker info (host, pid, queues, ...), expires with its heartbeat
    P:crons                 HASH    cron schedule name -> the queue holding its P:{Q}:cron:<name> hash
    P:runtime_crons         SET     names of the runtime schedules (made in the admin or by add_cron)
    P:crons_version         STRING  counter bumped by every runtime schedule change: beats reload
                                    the runtime schedules when it moves
    P:partitions            HASH    partitioned queue -> its number of partitions, recorded by its
                                    first worker or producer (storage/partition_counts.py refuses another N
                                    while the old partitions hold active jobs)
    P:beats                 ZSET    cron beat id -> last heartbeat, ms
    P:cancel                CHANNEL pub/sub, not a key: a notice per cancel of a running job
                                    ({"queue", "id", "worker", "entry"}); each worker listens
    P:beat:<id>             HASH    cron beat info (host, pid, started, last tick, schedules), expires
                                    with its heartbeat

Every Lua script is given every key it touches in KEYS (see lua/lib.lua and docs/internals.md,
"The key contract"); no script builds a key name. The scripts read a declared key back by its kind
and id, so the layout below is also how they tell which job a declared key belongs to.

Why no two keys can collide, whatever the ids: job ids, schedule names and worker ids may contain
``:`` (and anything else their own patterns allow), so a user-chosen part is only ever the LAST
segment of a key, after a fixed kind (``job:``, ``logs:``, ``errors:``, ``children:``, ``cron:``,
``cron_history:``, ``reply:``, ``worker:``, ``beat:``, ``rate:``, ``running:``, ``parked:``).
A key is then read back unambiguously from the left: ``P:``, then either ``{`` and a queue name up to
the first ``}`` (queue names cannot hold ``{``, ``}`` or ``:``, see validation.NAME_PATTERN) or a global
word; then the kind, which ends at its ``:`` (no kind is a prefix of another kind followed by ``:``, and
the fixed names ``waiting``... hold no ``:``); the rest is the id. Two different (queue, kind, id)
triples therefore give two different keys. A layout with a suffix after the id (the old
``P:{Q}:job:<id>:errors``) breaks this: job ``a``'s errors were the record of job ``a:errors``.
"""

from __future__ import annotations

from dataclasses import dataclass

from tempotask_django.partitions import hash_tag

CONSUMER_GROUP = "workers"


@dataclass(frozen=True)
class QueueKeys:
    """Key names of one queue."""

    prefix: str
    queue: str

    @property
    def base(self) -> str:
        return f"{self.prefix}:{{{hash_tag(self.queue)}}}"

    @property
    def job_prefix(self) -> str:
        """``job_prefix + id`` is the job hash."""
        return f"{self.base}:job:"

    @property
    def logs_prefix(self) -> str:
        """``logs_prefix + id`` is the job's log lines."""
        return f"{self.base}:logs:"

    @property
    def errors_prefix(self) -> str:
        """``errors_prefix + id`` is the job's errors."""
        return f"{self.base}:errors:"

    def job(self, job_id: str) -> str:
        return f"{self.job_prefix}{job_id}"

    def logs(self, job_id: str) -> str:
        return f"{self.logs_prefix}{job_id}"

    def errors(self, job_id: str) -> str:
        return f"{self.errors_prefix}{job_id}"

    def status(self, status: str) -> str:
        """The set of the queue's jobs in ``status`` (a JobStatus)."""
        return f"{self.base}:{status}"

    @property
    def waiting(self) -> str:
        return f"{self.base}:waiting"

    @property
    def delayed(self) -> str:
        return f"{self.base}:delayed"

    @property
    def processing(self) -> str:
        return f"{self.base}:processing"

    @property
    def completed(self) -> str:
        return f"{self.base}:completed"

    @property
    def failed(self) -> str:
        return f"{self.base}:failed"

    @property
    def cancelled(self) -> str:
        return f"{self.base}:cancelled"

    @property
    def stream(self) -> str:
        return f"{self.base}:stream"

    @property
    def wake(self) -> str:
        return f"{self.base}:wake"

    @property
    def seq(self) -> str:
        return f"{self.base}:seq"

    @property
    def paused(self) -> str:
        return f"{self.base}:paused"

    @property
    def listed(self) -> str:
        return f"{self.base}:listed"

    def reply(self, request_id: str) -> str:
        """Where script call ``request_id`` keeps its reply for a resend (lua/once.lua)."""
        return f"{self.base}:reply:{request_id}"

    @property
    def minutes(self) -> str:
        """Per-minute counts, field ``<minute>:<kind>`` (see ``minute_field`` and lua/lib.lua count_stat)."""
        return f"{self.base}:minutes"

    @staticmethod
    def minute_field(minute: int, kind: str) -> str:
        """The field of ``minutes`` counting ``kind`` (completed, failed, retried, cancelled) in
        ``minute`` (epoch minutes, server clock)."""
        return f"{minute}:{kind}"

    @property
    def metrics(self) -> str:
        return f"{self.base}:metrics"

    @property
    def limited(self) -> str:
        return f"{self.base}:limited"

    @property
    def qrate(self) -> str:
        return f"{self.base}:qrate"

    def rate(self, limit: str) -> str:
        return f"{self.base}:rate:{limit}"

    def running(self, limit: str) -> str:
        return f"{self.base}:running:{limit}"

    def parked(self, limit: str) -> str:
        return f"{self.base}:parked:{limit}"

    def children(self, parent_id: str) -> str:
        return f"{self.base}:children:{parent_id}"

    def cron(self, name: str) -> str:
        return f"{self.base}:cron:{name}"

    def cron_history(self, name: str) -> str:
        return f"{self.base}:cron_history:{name}"


@dataclass(frozen=True)
class GlobalKeys:
    prefix: str

    @property
    def queues(self) -> str:
        return f"{self.prefix}:queues"

    @property
    def workers(self) -> str:
        return f"{self.prefix}:workers"

    def worker(self, worker_id: str) -> str:
        return f"{self.prefix}:worker:{worker_id}"

    @property
    def crons(self) -> str:
        return f"{self.prefix}:crons"

    @property
    def runtime_crons(self) -> str:
        return f"{self.prefix}:runtime_crons"

    @property
    def crons_version(self) -> str:
        return f"{self.prefix}:crons_version"

    @property
    def partitions(self) -> str:
        """Partitioned queue -> its number of partitions (storage/partition_counts.py)."""
        return f"{self.prefix}:partitions"

    @property
    def beats(self) -> str:
        return f"{self.prefix}:beats"

    def beat(self, beat_id: str) -> str:
        return f"{self.prefix}:beat:{beat_id}"

    @property
    def cancel_channel(self) -> str:
        """The pub/sub channel of cancel notices (a channel, not a key: Redis Cluster broadcasts it)."""
        return f"{self.prefix}:cancel"
