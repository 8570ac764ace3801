"""RedisStore: every operation the engine performs on Redis, one method each.

The values it takes and returns (JobSpec, Finish, ClaimResult...) are in records.py.

State changes are Lua scripts (see lua/); each is atomic and costs one round trip. Batches
(bulk enqueue, finishing several jobs) are pipelined: one round trip for the whole batch.
Scripts run through ``store.scripts`` (scripts.py). Read-only views for the API and the admin are
``store.inspect`` (inspect.py).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, cast

import redis
from redis.cluster import RedisCluster
from redis.exceptions import NoScriptError, ResponseError

from tempotask_django import partitions, serialization
from tempotask_django.conf import Settings
from tempotask_django.exceptions import NotReplicated
from tempotask_django.storage import presence
from tempotask_django.storage.cluster import ClusterCalls, ClusterWaits
from tempotask_django.storage.direct import DirectCalls
from tempotask_django.storage.inspect import QueueInspector
from tempotask_django.storage.keys import CONSUMER_GROUP, GlobalKeys, QueueKeys
from tempotask_django.storage.outage import REDIS_ERRORS
from tempotask_django.storage.partition_counts import PartitionCounts
from tempotask_django.storage.records import (
    CancelResult,
    ClaimResult,
    Finish,
    FinishOutcome,
    JobSpec,
    ReclaimResult,
    SweepResult,
)
from tempotask_django.storage.scripts import NEEDED_KINDS, ScriptCall, ScriptRunner

logger = logging.getLogger("tempotask")

# Jobs per script call when enqueueing or finishing in bulk: one call amortizes the script's fixed
# cost over many jobs, and 100 keeps each call well under a millisecond (a script blocks Redis).
ENQUEUE_CHUNK = 100
FINISH_CHUNK = 100
# Doorbell entries kept (approximately): only the newest matters (lib.lua rings with the same cap).
WAKE_MAXLEN = 100
# Processing jobs one sweep call looks at (two commands each): keeps each call well under a millisecond.
SWEEP_PAGE = 200
# Most claims sent again at once because the previous one lacked the keys of jobs it could start
# (lua/claim.lua names them; another worker took the jobs it expected, or they are new).
CLAIM_ROUNDS = 3
# Pauses, s, before a follow-up claim that raised is repeated (``_claim_repeated``): well within the
# lease window (half of STALLED_TIMEOUT) in which a repeat still gets the batch its first run leased.
CLAIM_REPEAT_PAUSES = (0.1, 0.4, 1.0)
# Most keys a claim keeps declaring from the claim before it (beside those the last one named).
CLAIM_KEYS_KEPT = 400
# Most history jobs one trim call deletes when a history is over MAX_JOBS_PER_STATUS (lua/trim.lua):
# more than a finish batch adds, so the excess shrinks under any load,
# and few enough that a lowered MAX_JOBS_PER_STATUS never blocks Redis (the rest go on later calls).
HISTORY_TRIM_SLICE = 200
# Oldest jobs of a full history set each trim names for the next one (lua/trim.lua): more than a
# finish batch usually adds, so a full history is trimmed without asking for keys first, and few
# enough that declaring their four keys each stays cheap.
TRIM_AHEAD = 16


_COMPLETED = FinishOutcome(True, status="completed")


def _cut_log_line(message_json: str, max_bytes: int) -> str:
    """``message_json`` when it fits in ``max_bytes``, else the start of its text (of the JSON itself
    when it is not a string) as a JSON string that says it was cut."""
    size = len(message_json.encode())
    if size <= max_bytes:
        return message_json
    try:
        message = serialization.decode(message_json)
    except ValueError:
        message = None
    text = message if isinstance(message, str) else message_json
    note = f" [cut: {size:,} bytes, MAX_LOG_LINE_BYTES={max_bytes:,}]"
    kept = text.encode()[: max(0, max_bytes - len(note) - 2)].decode(errors="ignore")
    line = serialization.dumps(kept + note)
    while len(line.encode()) > max_bytes and kept:  # JSON escapes made it longer: keep less
        kept = kept[: len(kept) // 2]
        line = serialization.dumps(kept + note)
    return line


def _enqueued(spec: JobSpec, reply: Sequence[Any]) -> tuple[bool, str]:
    """(added, status) from enqueue.lua's reply for ``spec``; an added job's spec gets its enqueue time."""
    added, status, now_ms = reply
    if added:
        spec.enqueued_at_ms = int(now_ms)
    return bool(added), status


def _pairs(flat: Sequence[str]) -> dict[str, str]:
    it = iter(flat)
    return dict(zip(it, it, strict=False))


def _chunks_by_queue(
    indexes: Iterable[int], queue_of: Callable[[int], str], size: int
) -> Iterator[tuple[str, list[int]]]:
    """Group ``indexes`` by queue (first-seen order), in chunks of at most ``size``."""
    by_queue: dict[str, list[int]] = {}
    for i in indexes:
        by_queue.setdefault(queue_of(i), []).append(i)
    for queue, members in by_queue.items():
        for start in range(0, len(members), size):
            yield queue, members[start : start + size]


class RedisStore:
    """All reads and writes of tempotask's Redis state."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.prefix = settings.key_prefix
        self.global_keys = GlobalKeys(self.prefix)
        # The hot paths' round trips; on Redis Cluster routed by slot, and waits span nodes.
        self.waits: ClusterWaits | None = None
        self.direct: DirectCalls | ClusterCalls
        if isinstance(client, RedisCluster):
            self.direct = ClusterCalls(client)
            self.waits = ClusterWaits(self.direct)
        else:
            self.direct = DirectCalls(client.connection_pool)
        # A claim repeated after an error gets its first run's batch only while those leases surely hold.
        self.scripts = ScriptRunner(
            client,
            self.direct,
            self.prefix,
            request_ids=not settings.immediate,
            lease_window=settings.stalled_timeout / 2,
        )
        self.inspect = QueueInspector(client, self.prefix, self.scripts, settings)
        self.partition_counts = PartitionCounts(self)
        self._registered_queues: set[str] = set()
        self._qrate_keys: dict[str, str] = {}  # the claim's own key, per queue (a hot path)
        # Per queue, the keys the last claim named (lua/claim.lua): the records of the next jobs to
        # start and their limits' keys, declared by the next claim. Changed only by a reply, so a
        # claim repeated after an error is the same call (replies.py).
        self._claim_keys: dict[str, list[str]] = {}
        # Per queue, the keys of the oldest history jobs the last trim named: the next trim declares them.
        self._trim_keys: dict[str, list[str]] = {}
        # Per queue and consumer, the entries a claim delivered but could not start for lack of keys:
        # the next claim starts them (their keys declared).
        self._unstarted: dict[tuple[str, str], list[str]] = {}

    def close(self) -> None:
        if self.waits is not None:
            self.waits.close()
        self.direct.close()
        if isinstance(self.client, RedisCluster):
            # RedisCluster.close() leaves a client that cannot be used again; a closed store must
            # stay usable (it reconnects), as a standalone one does.
            for node in self.client.get_nodes():
                if node.redis_connection is not None:
                    node.redis_connection.connection_pool.disconnect()
        else:
            self.client.close()

    def keys(self, queue: str) -> QueueKeys:
        return QueueKeys(self.prefix, queue)

    def _history_size(self, queue: str) -> int:
        return self.settings.for_queue(queue).max_jobs_per_status

    # -- producers --------------------------------------------------------------------------
    def register_queue(self, queue: str) -> None:
        """Add ``queue`` to the set of known queues (once per process: later calls cost nothing).

        Redis may lose the set (FLUSHALL, a restart without persistence) or it may be pruned
        (``forget_empty_queues``): the scripts that enqueue report a queue they find without its mark
        of use, and ``registered_again`` adds it back whatever this cache says.
        """
        if queue not in self._registered_queues:
            partition = partitions.parse(queue)
            if partition is not None:  # first use of a partition in this process: is its N the recorded one?
                self.partition_counts.ensure(partition.queue, partition.count)
            self.client.sadd(self.global_keys.queues, queue)
            self._registered_queues.add(queue)

    def registered_again(self, queues: Iterable[str]) -> None:
        """Add ``queues`` to the set of known queues: a script found them not listed (see lua/lib.lua,
        mark_queue_used). Each gets its listed mark only once the SADD answered: if it never does,
        the next write to the queue reports it again."""
        queues = list(queues)
        if queues:
            self.client.sadd(self.global_keys.queues, *queues)
            self._registered_queues.update(queues)
            pipe = self.client.pipeline(transaction=False)
            for queue in queues:
                pipe.set(self.keys(queue).listed, "1")
            pipe.execute()

    def place(self, spec: JobSpec) -> JobSpec:
        """Put a job of a partitioned queue in the partition its id maps to (partitions.py): its
        ``queue`` becomes that partition. Other jobs are left as they are."""
        spec.queue = partitions.for_id(self.settings, spec.queue, spec.id)
        return spec

    def enqueue(self, spec: JobSpec) -> tuple[bool, str]:
        """Add a job unless one with its id is active (a job of a partitioned queue: in the partition
        its id maps to). Returns (added, status); an added job's spec gets its ``enqueued_at_ms`` (the
        Redis clock) and, in a partitioned queue, its partition as ``queue``."""
        self.place(spec)
        self.register_queue(spec.queue)
        (((reply,), new_queue),), acknowledged = self._run_enqueues(
            [("enqueue", spec.queue, spec.script_args(), self._enqueue_keys([spec]))]
        )
        if new_queue:
            self.registered_again([spec.queue])
        self._check_replicated([spec], acknowledged)
        return _enqueued(spec, reply)

    def _run_enqueues(self, calls: Sequence[ScriptCall]) -> tuple[list[Any], int]:
        """Run enqueue calls in one round trip; with ENQUEUE_REPLICAS, each followed by a WAIT on its
        connection. Returns the replies and the fewest replicas that acknowledged a call."""
        replicas = 0 if self.settings.immediate else self.settings.enqueue_replicas
        if not replicas:
            return self.scripts.pipeline(calls), 0
        timeout_ms = max(1, int(self.settings.enqueue_replicas_timeout * 1000))
        replies, counts = self.scripts.pipeline_replicated(calls, replicas, timeout_ms)
        return replies, min(counts, default=replicas)

    def _check_replicated(self, specs: Sequence[JobSpec], acknowledged: int) -> None:
        """Raise NotReplicated when fewer replicas than ENQUEUE_REPLICAS acknowledged the write."""
        required = 0 if self.settings.immediate else self.settings.enqueue_replicas
        if acknowledged < required:
            ids = [spec.id for spec in specs]
            raise NotReplicated(ids, acknowledged, required, self.settings.enqueue_replicas_timeout)

    def enqueue_many(self, specs: Sequence[JobSpec]) -> list[tuple[bool, str]]:
        """Enqueue a batch in one round trip; each job is still deduplicated on its own.

        Jobs of one queue go ENQUEUE_CHUNK at a time into one script call (short scripts, few commands);
        those of a partitioned queue go to their partitions (``place``).
        """
        for spec in specs:
            self.place(spec)
        for queue in {spec.queue for spec in specs}:
            self.register_queue(queue)
        calls, positions = [], []
        for queue, chunk in _chunks_by_queue(range(len(specs)), lambda i: specs[i].queue, ENQUEUE_CHUNK):
            args = [arg for i in chunk for arg in specs[i].script_args()]
            calls.append(("enqueue", queue, args, self._enqueue_keys([specs[i] for i in chunk])))
            positions.append(chunk)
        results: list[tuple[bool, str]] = [(False, "")] * len(specs)
        new_queues = set()
        answers, acknowledged = self._run_enqueues(calls)
        for (_, queue, *_), chunk, (replies, new_queue) in zip(calls, positions, answers, strict=True):
            if new_queue:
                new_queues.add(queue)
            for i, reply in zip(chunk, replies, strict=True):
                results[i] = _enqueued(specs[i], reply)
        self.registered_again(new_queues)
        self._check_replicated(specs, acknowledged)
        return results

    def _enqueue_keys(self, specs: Sequence[JobSpec]) -> list[str]:
        """The keys an enqueue of ``specs`` (one queue) declares: each record, each parent's children
        set. A finished job an id replaces asks for its own (lua/enqueue.lua)."""
        keys = self.keys(specs[0].queue)
        declared = [keys.job(spec.id) for spec in specs]
        declared += [keys.children(spec.parent_id) for spec in specs if spec.parent_id]
        return declared

    def trim_call(self, queue: str) -> ScriptCall:
        """The call trimming the queue's history by one slice when over MAX_JOBS_PER_STATUS (lua/trim.lua)."""
        args = [self._history_size(queue), HISTORY_TRIM_SLICE, TRIM_AHEAD]
        return ("trim", queue, args, self._trim_keys.get(queue, []))

    def trim_history(self, queue: str) -> int:
        """Trim the queue's history by one slice; returns how many jobs are still over the size."""
        return self._trim_result(queue, self.scripts.run(*self.trim_call(queue)))

    def _trim_result(self, queue: str, reply: Sequence[Any]) -> int:
        """How many jobs are still over the history size; keeps the keys of the jobs the trim named."""
        over, oldest = reply
        keys = self.keys(queue)
        self._trim_keys[queue] = [
            key for id_ in oldest for key in (keys.job(id_), keys.logs(id_), keys.errors(id_), keys.children(id_))
        ]
        return int(over)

    # -- workers ----------------------------------------------------------------------------
    def claim(self, queue: str, consumer: str, count: int) -> ClaimResult:
        """Start up to ``count`` jobs of ``queue`` for ``consumer`` (promotes due delayed jobs first)."""
        return self._claim_more(queue, consumer, count, self.scripts.run(*self._claim_call(queue, consumer, count)))

    def _claim_more(self, queue: str, consumer: str, count: int, reply: Sequence[Any]) -> ClaimResult:
        """The result of a claim's ``reply``, with the jobs of the claims sent again at once while it
        lacked keys to start more (it names them: the next call declares them), CLAIM_ROUNDS at most."""
        result, lacked = self._claim_result(queue, consumer, reply)
        for _ in range(CLAIM_ROUNDS):
            room = count - len(result.jobs)
            if not lacked or room <= 0 or result.paused:
                break
            follow_up = self._claim_repeated(queue, self._claim_call(queue, consumer, room))
            if follow_up is None:
                break
            more, lacked = self._claim_result(queue, consumer, follow_up)
            result = ClaimResult(result.jobs + more.jobs, more.next_due_ms, more.wake_id, more.paused)
        return result

    def _claim_repeated(self, queue: str, call: tuple[str, str, list[Any], list[str]]) -> Sequence[Any] | None:
        """The reply to a follow-up claim ``call``, the same call repeated (CLAIM_REPEAT_PAUSES) while
        it raises; None when it never got through.

        A call that raised may have run and leased a batch: only the same call repeated soon, for
        as many jobs, gets it (storage/replies.py). Here the caller still holds the slots for it; a
        later claim could ask for less, and the batch would be leased to nobody until a take-over.
        """
        for pause in (*CLAIM_REPEAT_PAUSES, None):
            try:
                return cast(Sequence[Any], self.scripts.run(*call))
            except Exception as error:  # the jobs claimed so far are leased to this worker: hand them out
                if pause is None or not isinstance(error, REDIS_ERRORS):
                    logger.warning("claiming more jobs of %s failed: %s", queue, error)
                    return None
                time.sleep(pause)
        return None

    def _claim_call(self, queue: str, consumer: str, count: int) -> tuple[str, str, list[Any], list[str]]:
        """The claim script call: its arguments (the queue's RATE_LIMIT last) and its own key (the
        queue's rate log)."""
        rate = None if self.settings.immediate else self.settings.for_queue(queue).rate_limit
        args = [CONSUMER_GROUP, consumer, count, self._history_size(queue), rate.wire if rate else ""]
        args += self._unstarted.get((queue, consumer), ())
        qrate = self._qrate_keys.get(queue)
        if qrate is None:
            qrate = self._qrate_keys[queue] = self.keys(queue).qrate
        return "claim", queue, args, [qrate, *self._claim_keys.get(queue, ())]

    def _claim_result(self, queue: str, consumer: str, reply: Sequence[Any]) -> tuple[ClaimResult, bool]:
        """A claim's result, and whether it lacked keys to start more; keeps the keys it named and
        the entries it could not start."""
        jobs, next_due, wake_id, paused, needed, lacked, unstarted = reply
        if unstarted:
            self._unstarted[(queue, consumer)] = list(unstarted)
        else:
            self._unstarted.pop((queue, consumer), None)
        keys = self.keys(queue)
        named = [getattr(keys, str(kind))(str(id_)) for kind, id_ in needed if kind in NEEDED_KINDS]
        # Kept from the last claim: its limits' keys (the next jobs of a limited task need them too),
        # and every key when it lacked some (the claim sent again needs those it had as well).
        sent = self._claim_keys.get(queue, [])
        kept = sent if lacked else [key for key in sent if not key.startswith(keys.job_prefix)]
        self._claim_keys[queue] = list(dict.fromkeys([*kept[-CLAIM_KEYS_KEPT:], *named]))
        return ClaimResult([_pairs(job) for job in jobs], int(next_due), wake_id, bool(paused)), bool(lacked)

    def reclaim(
        self,
        queue: str,
        consumer: str,
        count: int,
        cursor: str = "0-0",
        *,
        idle: bool = False,
        held: str = "",
        may_hold: bool = False,
    ) -> ReclaimResult:
        """Take over up to ``count`` jobs whose workers stopped renewing their leases.

        A job taken over twice already (a suspect) is only started by an ``idle`` worker (running
        nothing), and then alone: ``alone`` tells the worker to start nothing else beside it. A busy
        worker that ``may_hold`` one instead holds it (its lease moves to the worker, no delivery
        counted): the result's ``held``. Passed back as ``held``, it is started once the worker is
        ``idle``. Nothing is taken over from a paused queue. See lua/reclaim.lua.
        """
        min_idle_ms = int(self.settings.stalled_timeout * 1000)
        jobs, next_cursor, poisoned, alone, suspects, now_held = self.scripts.run(
            "reclaim",
            queue,
            [
                CONSUMER_GROUP,
                consumer,
                min_idle_ms,
                cursor,
                count,
                self.settings.max_deliveries,
                self._history_size(queue),
                1 if idle else 0,
                held,
                1 if may_hold else 0,
                self.settings.max_errors_per_job,
            ],
        )
        if int(poisoned):
            self.trim_history(queue)
        return ReclaimResult(
            [_pairs(job) for job in jobs], next_cursor, int(poisoned), bool(alone), int(suspects), now_held
        )

    def sweep_lost_entries(self, queue: str, offset: int = 0, page: int = SWEEP_PAGE) -> SweepResult:
        """Send back to waiting, as a new attempt, the processing jobs whose stream entry is no longer
        pending (deleted while pending, or lost by Redis), looking at ``page`` of them from ``offset``.

        Such a job could never finish nor be taken over. A job whose entry is pending is left alone
        (a stalled one is ``reclaim``'s). The first call of a pass (``offset`` 0) also trims the
        queue's history by one slice (HISTORY_TRIM_SLICE) when it is over MAX_JOBS_PER_STATUS, so an
        idle queue gets back to it too. See lua/sweep.lua.
        """
        settings = self.settings
        args = [CONSUMER_GROUP, offset, page, settings.max_deliveries, self._history_size(queue)]
        if offset == 0:
            self.trim_history(queue)
        next_offset, requeued, failed = self.scripts.run("sweep", queue, [*args, settings.max_errors_per_job])
        return SweepResult(int(next_offset), int(requeued), int(failed))

    def finish_and_claim(
        self, consumer: str, finishes: Sequence[Finish], queue: str | None = None, count: int = 0
    ) -> tuple[list[FinishOutcome], ClaimResult | None]:
        """Record finished attempts and, in the same round trip, claim up to ``count`` jobs of ``queue``.

        Successes of one queue are recorded by one script call (FINISH_CHUNK at most), failures one
        by one; every job's ownership is still checked on its own. The claim runs after the finishes.
        """
        calls, positions = self._finish_calls(consumer, finishes)
        trims = [self.trim_call(finished) for finished in dict.fromkeys(item.queue for item in finishes)]
        calls += trims
        if queue is not None and count > 0:
            calls.append(self._claim_call(queue, consumer, count))
        replies = self.scripts.pipeline(calls, raise_errors=False)
        for reply in replies[: len(positions)]:
            if isinstance(reply, Exception):
                raise reply
        self._trim_replies(trims, replies[len(positions) :])
        outcomes = [FinishOutcome(False)] * len(finishes)
        for chunk, reply in zip(positions, replies, strict=False):
            if len(chunk) == 1 and not finishes[chunk[0]].succeeded:  # a fail call: {1, status} or {0, reason}
                accepted, detail = int(reply[0]) == 1, reply[1]
                outcomes[chunk[0]] = FinishOutcome(accepted, **{"status" if accepted else "reason": detail})
                continue
            for i, one in zip(chunk, reply, strict=True):  # a complete call: 1 or the reason, per job
                outcomes[i] = _COMPLETED if one == 1 else FinishOutcome(False, reason=one)
        claimed = None
        if len(replies) > len(positions) + len(trims):
            if isinstance(replies[-1], Exception):  # the finishes are recorded: report them, skip the claim
                logger.warning("claiming jobs of %s failed after recording finished jobs: %s", queue, replies[-1])
            else:
                assert queue is not None
                claimed = self._claim_more(queue, consumer, count, replies[-1])
        return outcomes, claimed

    def _trim_replies(self, trims: Sequence[ScriptCall], replies: Sequence[Any], again: bool = True) -> None:
        """Read the replies of a finish batch's ``trims``. A history left a few jobs over its size
        (the batch held more jobs than the last trim named ahead: it deleted those it knew) is
        trimmed once more at once: the reply named the jobs left, so that call deletes them without
        asking."""
        over = []
        for call, reply in zip(trims, replies, strict=False):
            if isinstance(reply, Exception):  # the finishes are recorded; the next trim catches up
                logger.warning("trimming the history of %s failed: %s", call[1], reply)
            elif 0 < self._trim_result(call[1], reply) <= TRIM_AHEAD:  # more (a lowered size) go slice by slice
                over.append(call[1])
        if over and again:
            calls = [self.trim_call(queue) for queue in over]
            try:
                replies = self.scripts.pipeline(calls, raise_errors=False)
            except Exception as error:  # the next finish batch or sweep trims
                logger.warning("trimming the history of %s failed: %s", ", ".join(over), error)
            else:
                self._trim_replies(calls, replies, again=False)

    def _finish_calls(self, consumer: str, finishes: Sequence[Finish]) -> tuple[list[ScriptCall], list[list[int]]]:
        calls: list[ScriptCall] = []
        positions: list[list[int]] = []
        succeeded = [i for i, item in enumerate(finishes) if item.succeeded]
        for queue, chunk in _chunks_by_queue(succeeded, lambda i: finishes[i].queue, FINISH_CHUNK):
            args: list[Any] = [CONSUMER_GROUP, consumer, self._history_size(queue)]
            keys = self.keys(queue)
            for i in chunk:
                args += [finishes[i].entry_id, finishes[i].job_id, finishes[i].payload]
            calls.append(("complete", queue, args, [keys.job(finishes[i].job_id) for i in chunk]))
            positions.append(chunk)
        for i, item in enumerate(finishes):
            if not item.succeeded:
                args = [
                    CONSUMER_GROUP,
                    consumer,
                    item.entry_id,
                    item.job_id,
                    item.payload,
                    item.retry_delay_ms,
                    self._history_size(item.queue),
                    self.settings.max_errors_per_job,
                    1 if item.known_task else 0,
                    1 if item.cancelled else 0,
                ]
                keys = self.keys(item.queue)
                calls.append(("fail", item.queue, args, [keys.job(item.job_id), keys.errors(item.job_id)]))
                positions.append([i])
        return calls, positions

    def renew(self, queue: str, consumer: str, entry_ids: Sequence[str]) -> list[str]:
        """Renew leases; returns the entry ids this consumer no longer owns (taken over, or deleted
        from the stream while pending: those are acknowledged, and their jobs swept back to waiting)."""
        return self.renew_leases(queue, consumer, entry_ids)[0]

    def renew_leases(self, queue: str, consumer: str, entry_ids: Sequence[str]) -> tuple[list[str], list[str]]:
        """``renew``, also returning the renewed entry ids whose job was cancelled (a worker that
        missed the cancel notice learns it here): (lost, cancelled)."""
        if not entry_ids:
            return [], []
        lost, cancelled = self.scripts.run("renew", queue, [CONSUMER_GROUP, consumer, *entry_ids])
        return list(lost), list(cancelled)

    def give_back(self, consumer: str, entries: Sequence[tuple[str, str, str]]) -> int:
        """Send running jobs ``(queue, entry id, job id)`` that ``consumer`` still owns back to waiting
        at once, their attempt not counted (their worker is about to exit). Returns how many."""
        calls: list[ScriptCall] = []
        for queue, chunk in _chunks_by_queue(range(len(entries)), lambda i: entries[i][0], FINISH_CHUNK):
            args: list[Any] = [CONSUMER_GROUP, consumer]
            for i in chunk:
                args += [entries[i][1], entries[i][2]]
            calls.append(("give_back", queue, args, [self.keys(queue).job(entries[i][2]) for i in chunk]))
        return sum(int(given) for given in self.scripts.pipeline(calls)) if calls else 0

    def wait_for_jobs(self, wake_ids: dict[str, str], timeout_ms: int) -> bool:
        """Block until a job is enqueued in one of the queues (after ``wake_ids``) or the timeout."""
        if timeout_ms <= 0:
            return False
        if self.waits is not None:
            return self.waits.wait(self._wake_streams(wake_ids), timeout_ms)
        return bool(self.direct.call(*self._wait_command(wake_ids, timeout_ms), resend=True))  # reads only

    def wait_then_claim(
        self, wake_ids: dict[str, str], timeout_ms: int, queue: str, consumer: str, count: int
    ) -> ClaimResult:
        """Block as ``wait_for_jobs`` does, then claim up to ``count`` jobs of ``queue``: one round trip.

        The two commands go in one pipeline: Redis runs the claim as soon as the blocking read
        returns (a client's commands run in order), so a job enqueued for an idle worker is claimed
        without a second round trip. The claim runs after a timeout too.

        On Redis Cluster the wait spans nodes (``ClusterWaits``) and the claim follows it: two round
        trips when a job ends the wait.
        """
        if self.waits is not None:
            self.wait_for_jobs(wake_ids, timeout_ms)
            return self.claim(queue, consumer, count)
        claim = self.scripts.command(*self._claim_call(queue, consumer, count))
        woken, claimed = self.scripts.send([self._wait_command(wake_ids, timeout_ms), claim])
        if isinstance(claimed, NoScriptError):
            return self.claim(queue, consumer, count)  # loads the script, then claims
        if isinstance(claimed, Exception):
            raise claimed
        if isinstance(woken, Exception):  # the claim ran all the same: its batch is ours, never dropped
            logger.warning("waiting for jobs of %s failed: %s", ", ".join(wake_ids), woken)
        return self._claim_more(queue, consumer, count, claimed)

    def _wake_streams(self, wake_ids: dict[str, str]) -> dict[str, str]:
        return {self.keys(queue).wake: wake_id for queue, wake_id in wake_ids.items()}

    def _wait_command(self, wake_ids: dict[str, str], timeout_ms: int) -> tuple[Any, ...]:
        keys = [self.keys(queue).wake for queue in wake_ids]
        return ("XREAD", "COUNT", 1, "BLOCK", max(1, int(timeout_ms)), "STREAMS", *keys, *wake_ids.values())

    def forget_consumers(self, queue: str, min_idle_ms: int, only: str = "") -> list[str]:
        """Delete idle consumers without pending entries (checked atomically)."""
        return list(self.scripts.run("forget_consumers", queue, [CONSUMER_GROUP, min_idle_ms, only]))

    def append_log(self, queue: str, job_id: str, message_json: str) -> bool:
        """Append a line to a job's log, unless the job is gone. A line longer than MAX_LOG_LINE_BYTES
        is cut (it says so), and the log keeps its newest MAX_LOG_LINES_PER_JOB lines."""
        line = _cut_log_line(message_json, self.settings.max_log_line_bytes)
        keys = self.keys(queue)
        args = [job_id, line, self.settings.max_log_lines_per_job]
        return bool(self.scripts.run("log", queue, args, keys=[keys.job(job_id), keys.logs(job_id)]))

    def set_progress(self, queue: str, job_id: str, entry_id: str, progress_json: str) -> bool:
        """Store a running job's progress (a JSON object), unless its attempt ``entry_id`` is over."""
        keys = [self.keys(queue).job(job_id)]
        return bool(self.scripts.run("progress", queue, [entry_id, progress_json], keys=keys))

    # -- management -------------------------------------------------------------------------
    def delete_job(self, queue: str, job_id: str) -> str | None:
        """Delete a job in any status. Returns the status it had, None when it did not exist.

        A queue left with nothing is taken out of the set of known queues (see ``_forget``). A
        partitioned queue's job is deleted in the partition holding it.
        """
        queue = self.inspect.locate(queue, job_id)
        reply = self.scripts.run("delete", queue, [CONSUMER_GROUP, job_id], keys=self.job_keys(queue, job_id))
        if not reply:
            return None
        status, emptied = reply
        if emptied:
            self._forget(queue)
        return status

    def job_keys(self, queue: str, job_id: str) -> list[str]:
        """The record, logs, errors and children set of a job: the keys a script deleting it names."""
        keys = self.keys(queue)
        return [keys.job(job_id), keys.logs(job_id), keys.errors(job_id), keys.children(job_id)]

    def cancel_job(self, queue: str, job_id: str) -> CancelResult | None:
        """Cancel a job (see lua/cancel.lua): waiting or delayed ones end cancelled at once, a
        processing one is marked and its worker told. None when there is no such job."""
        queue = self.inspect.locate(queue, job_id)
        args = [job_id, self._history_size(queue), self.global_keys.cancel_channel, self.settings.max_errors_per_job]
        keys = self.keys(queue)
        reply = self.scripts.run("cancel", queue, args, keys=[keys.job(job_id), keys.errors(job_id)])
        if not reply:
            return None
        if reply[1] == "cancelled":
            self.trim_history(queue)
        previous, what = reply
        return CancelResult(previous, what == "cancelled", what == "requested")

    def retry_job(self, queue: str, job_id: str) -> str | None:
        """Queue a failed, cancelled or delayed job again now. Returns the status it had (None if missing)."""
        queue = self.inspect.locate(queue, job_id)
        return self.scripts.run("retry", queue, [job_id], [self.keys(queue).job(job_id)]) or None

    def retry_failed(self, queue: str, batch: int = 500) -> int:
        """Queue every job that was failed when called again now, in batches. Returns the count.

        Jobs that fail again meanwhile get a newer finish time, so they are not retried twice. A
        partitioned queue's partitions are each done this way.
        """
        found = self.inspect.physical(queue)
        if len(found) > 1:
            return sum(self.retry_failed(partition, batch) for partition in found)
        until = self.server_time_ms()
        failed_key = self.keys(queue).failed
        total = 0
        while True:
            ids = self.client.zrangebyscore(failed_key, "-inf", until, start=0, num=batch)
            if not ids:
                return total
            keys = self.keys(queue)
            replies = self.scripts.pipeline([("retry", queue, [job_id], [keys.job(str(job_id))]) for job_id in ids])
            retried = sum(1 for reply in replies if reply == "failed")
            total += retried
            if retried == 0:  # ids without a record: nothing more this call can do
                return total

    def purge(self, queue: str, status: str, batch: int = 500) -> int:
        """Delete every completed, failed or cancelled job of a queue, in short batches. Returns the count.

        A queue left with nothing is taken out of the set of known queues (see ``_forget``). A
        partitioned queue's partitions are each purged.
        """
        found = self.inspect.physical(queue)
        if len(found) > 1:
            return sum(self.purge(partition, status, batch) for partition in found)
        total = 0
        while True:
            deleted, emptied = self.scripts.run("purge", queue, [status, batch, CONSUMER_GROUP])
            total += int(deleted)
            if emptied:
                self._forget(queue)
            if int(deleted) == 0:  # (fewer than batch: the rest of the history, or jobs left for the next call)
                return total

    def _forget(self, queue: str) -> None:
        """Take ``queue``, which a script found left with nothing and cleared, out of the set of known
        queues, so the set (and the admin's overview, which reads every queue in it) holds only queues
        in use. The queue comes back with its next job: that enqueue finds its listed mark gone.

        A queue a cron schedule enqueues to stays. A job enqueued or a pause set since the script ran
        registered the queue, maybe just before the SREM: finding the queue's mark of use or pause
        after the SREM, the queue is registered again.
        """
        if queue in self.client.hvals(self.global_keys.crons):
            return
        keys = self.keys(queue)
        # The listed mark goes first: should the SREM then fail, the queue is still listed, and a
        # job enqueued from now on reports it again (a queue out of the set but marked listed would
        # stay out for good).
        self.client.delete(keys.listed)
        self.client.srem(self.global_keys.queues, queue)
        self._registered_queues.discard(queue)
        if self.client.exists(keys.seq, keys.paused):
            self.registered_again([queue])

    def pause_queue(self, queue: str) -> None:
        """Workers stop starting jobs from ``queue`` (every partition of a partitioned one); running jobs finish."""
        found = self.inspect.physical(queue)
        if len(found) > 1:
            for partition in found:
                self.pause_queue(partition)
            return
        # Paused first, registered second: ``_forget`` checks the flag after its SREM.
        self.client.set(self.keys(queue).paused, "1")
        self._registered_queues.discard(queue)
        self.register_queue(queue)

    def resume_queue(self, queue: str) -> None:
        """Workers start jobs from ``queue`` again; idle ones are woken at once (the doorbell rings)."""
        found = self.inspect.physical(queue)
        if len(found) > 1:
            for partition in found:
                self.resume_queue(partition)
            return
        keys = self.keys(queue)
        # In order, not in MULTI: redis-py 5's cluster pipeline refuses transactions.
        pipe = self.client.pipeline(transaction=False)
        pipe.delete(keys.paused)
        pipe.xadd(keys.wake, {"resumed": "1"}, maxlen=WAKE_MAXLEN, approximate=True)
        pipe.execute()

    def ring(self, queues: Iterable[str]) -> None:
        """Ring the doorbell of ``queues``: workers blocked on it wake up (and find nothing new)."""
        pipe = self.client.pipeline(transaction=False)
        for queue in queues:
            pipe.xadd(self.keys(queue).wake, {"ring": "1"}, maxlen=WAKE_MAXLEN, approximate=True)
        pipe.execute()

    def register_worker(self, worker_id: str, info: dict[str, Any], ttl: float) -> None:
        """Publish a worker's heartbeat and info; both vanish if it stops renewing them."""
        keys = self.global_keys
        presence.publish(self.client, keys.workers, keys.worker(worker_id), worker_id, info, ttl, self.server_time_ms())

    def unregister_worker(self, worker_id: str) -> None:
        presence.withdraw(self.client, self.global_keys.workers, self.global_keys.worker(worker_id), worker_id)

    def master_changes(self, *, ask: bool = False) -> int:
        """How many times the sentinels have named a new master since this store's client started
        (always 0 outside Sentinel mode). With ``ask``, the sentinels are asked now (one round trip;
        when none answers, the count stays as it is: the master's own errors will tell)."""
        pool = getattr(self.client, "connection_pool", None)
        if getattr(pool, "master_changes", None) is None:
            return 0
        if ask:
            with contextlib.suppress(redis.ConnectionError):
                pool.get_master_address()  # type: ignore[union-attr]
        return pool.master_changes  # type: ignore[union-attr]

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
