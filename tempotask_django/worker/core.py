"""The worker: claims jobs, runs them on threads (or an event loop) and records how they ended.

One Worker is one consumer in each of its queues' consumer groups. It is built from parts with
one job each, which it creates and wires together:

- ``RunningJobs`` (running.py): the jobs running now, and whether another may start beside them;
- ``Slots`` (slots.py): how many more jobs may start, overall and per queue;
- ``Claimer`` (claimer.py): claims from the streams and blocks on the doorbell when idle;
- ``Dispatcher`` (dispatch.py): runs claimed jobs on job threads or the event loop (runner.py);
- ``Finisher`` (finisher.py): its own thread, records finished attempts in batches and refills;
- ``Housekeeper`` (housekeeper.py): leases, heartbeat, take-overs and sweeps, on a schedule;
- ``Watchdog`` (watchdog.py): its own thread, time limits, cancel notices and the hard stop.

``run_once()`` is a single iteration (housekeeping, claim, dispatch, or block until work arrives);
``run()`` repeats it until stopped. Constructing a Worker starts no thread: the finisher starts
with the first iteration, job threads and the event loop with their first job.
"""

from __future__ import annotations

import logging
import os
import queue as queue_module
import secrets
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from tempotask_django import partitions, serialization
from tempotask_django.api import add_job
from tempotask_django.conf import Settings, get_settings
from tempotask_django.job import Job
from tempotask_django.registry import TaskRegistry, registry
from tempotask_django.storage.connection import get_default_store
from tempotask_django.storage.outage import REDIS_ERRORS, ErrorThrottle
from tempotask_django.storage.store import RedisStore
from tempotask_django.worker.claimer import Claimer
from tempotask_django.worker.context import load_app_context
from tempotask_django.worker.dispatch import Dispatcher
from tempotask_django.worker.finisher import Finisher
from tempotask_django.worker.housekeeper import Housekeeper
from tempotask_django.worker.memory import resident_mb
from tempotask_django.worker.outcome import FinishedJobs
from tempotask_django.worker.progress import ProgressWriter
from tempotask_django.worker.runner import JobRunner
from tempotask_django.worker.running import RunningJob, RunningJobs
from tempotask_django.worker.slots import Slots
from tempotask_django.worker.watchdog import Watchdog

logger = logging.getLogger("tempotask")

# How often a worker with ``max_memory`` reads its resident memory, seconds.
MEMORY_CHECK_INTERVAL = 1.0


class Worker:
    """Processes jobs of ``queues`` (first listed first) with ``concurrency`` jobs at once.

    ``prefetch``: claim up to that many jobs more than run at once; they wait in the worker for a
    free thread (leased to it, shown as processing, their attempt counted; their time limit starts
    with their handler). Fewer, larger claims and finishes for many short jobs; see
    docs/performance.md. A stopping worker gives the ones not started back to waiting.

    Example (what ``manage.py runworkers`` does)::

        Worker(["default", "emails"], concurrency=4).run()
    """

    def __init__(
        self,
        queues: Sequence[str] | None = None,
        *,
        concurrency: int | None = None,
        prefetch: int = 0,
        burst: bool = False,
        max_jobs: int | None = None,
        max_memory: float | None = None,
        store: RedisStore | None = None,
        settings: Settings | None = None,
        tasks: TaskRegistry = registry,
        app_context: Mapping[str, Any] | None = None,
        name: str | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.store = store or get_default_store()
        self.queues = list(queues or [self.settings.default_queue])
        # A partitioned queue is served through all its partitions (partitions.py), which share its
        # CONCURRENCY: ``physical`` lists the queues claimed from, ``groups`` them per queue served.
        groups = [partitions.expand(self.settings, queue) for queue in self.queues]
        self.physical = [physical for group in groups for physical in group]
        self.concurrency = concurrency or max(self.settings.for_queue(q).concurrency for q in self.queues)
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 0:
            raise ValueError(f"prefetch must be a whole number of jobs, 0 or more, not {prefetch!r}")
        self.prefetch = prefetch
        # Jobs claimed at most: those running, and those prefetched that wait for a thread.
        capacity = self.concurrency + prefetch
        self.burst = burst
        self.max_jobs = max_jobs
        self.max_memory = max_memory  # MB of resident memory
        # Set once max_jobs or max_memory is reached: the worker stops, and asks to be replaced.
        self.limit_reached = False
        self._next_memory_check = 0.0
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.started_at = time.time()
        if app_context is None:
            app_context = load_app_context(self.settings.context)
        self.progress = ProgressWriter(self.store)
        self.runner = JobRunner(tasks, app_context, self._write_log, add_job, self.name, self.progress)
        self._stopping = threading.Event()
        # Set when the loop may have something to do: a slot freed, or a stop requested.
        self._wakeup = threading.Event()
        self._throttle = ErrorThrottle()
        # A queue's own CONCURRENCY bounds its jobs claimed, prefetched ones included: its threads
        # are shared with the other queues, so only that keeps it to its limit of jobs at once.
        limits = {
            q: self.settings.for_queue(q).concurrency if q in self.settings.queues else capacity for q in self.queues
        }
        group_of = {physical: queue for queue, group in zip(self.queues, groups, strict=True) for physical in group}
        self.slots = Slots(capacity, limits, max_jobs, groups=group_of)
        self.running = RunningJobs()
        finished: FinishedJobs = queue_module.SimpleQueue()
        # One job at a time: sync jobs run on the finisher's thread, between two records (no
        # thread hand-off per job); see Finisher._loop_inline.
        inline = self.concurrency == 1
        self.dispatcher = Dispatcher(
            self.runner, self.running, finished, self.concurrency, self.name, prefetch=prefetch, inline=inline
        )
        self.claimer = Claimer(
            self.store,
            self.name,
            self.physical,
            self.slots,
            self.dispatcher,
            self._throttle,
            groups=groups,
            stopping=self._stopping,
        )
        self.finisher = Finisher(
            self.store,
            self.settings,
            self.name,
            self.physical,
            capacity,
            max_jobs,
            self.running,
            self.slots,
            self.claimer,
            finished,
            stopping=self._stopping,
            wakeup=self._wakeup,
            backlog=self.dispatcher.backlog if prefetch and not inline else None,
            run_waiting=self.dispatcher.run_waiting if inline else None,
        )
        if inline:
            self.dispatcher.deliver = self.finisher.accept
        if prefetch and not inline:
            self.dispatcher.when_backlog_empties(self.finisher.backlog_emptied)
        self.housekeeper = Housekeeper(
            self.store,
            self.settings,
            self.name,
            self.physical,
            capacity,
            self.running,
            self.slots,
            self.dispatcher,
            self._throttle,
            stopping=self._stopping,
            describe=self.info,
        )
        self.watchdog = Watchdog(
            self.store, self.name, self.running, self.finisher, self.settings.timeout_grace, self._abandon
        )

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def request_stop(self) -> None:
        """Stop taking jobs; ``run()`` returns once running jobs finish (or SHUTDOWN_TIMEOUT passes)."""
        if not self._stopping.is_set():
            logger.info("worker %s stopping: no new jobs; waiting for %d running", self.name, self.running_count)
        self._stopping.set()
        self._wakeup.set()

    def _abandon(self) -> None:
        """The watchdog abandons a handler: stop now, and ring the doorbell so that a loop blocked on
        it (up to IDLE_BLOCK_MS) gives the running jobs back and exits at once."""
        self.request_stop()
        try:
            self.store.ring(self.physical)
        except REDIS_ERRORS as exc:
            self._throttle.failed("waking the worker loop", exc)

    @property
    def hard_stopped(self) -> bool:
        """A handler did not stop within TIMEOUT_GRACE: this process must be replaced (its caller exits
        with REPLACE_EXIT_CODE; ``runworkers`` does)."""
        return self.watchdog.hard_stopped.is_set()

    @property
    def running_count(self) -> int:
        return len(self.running)

    @property
    def jobs_started(self) -> int:
        return self.dispatcher.started

    @property
    def jobs_done(self) -> int:
        return self.finisher.jobs_done

    def run(self) -> bool:
        """Process jobs until stopped (or, with ``burst``, until the queues are idle).

        Returns True when every running job finished before exiting. Raises PartitionCountChanged
        before taking any job when a queue's PARTITIONS differs from the number its active jobs are
        spread over (storage/partition_counts.py).
        """
        self._check_partitions_once_answered()
        self.announce()
        self.finisher.start()
        self.watchdog.start()
        while not self.stopping:
            try:
                self.run_once()
            except REDIS_ERRORS as exc:
                self._stopping.wait(self._throttle.failed("talking to Redis", exc))
            except Exception:
                logger.exception("worker %s: unexpected error in the worker loop; continuing", self.name)
                self._stopping.wait(1.0)
        return self.shutdown()

    def run_once(self, now: float | None = None, *, block: bool = True) -> int:
        """One iteration: housekeeping due at ``now`` (``time.monotonic()`` by default), then claim
        and start jobs, or wait for work. Returns jobs started."""
        self.finisher.start()
        now = time.monotonic() if now is None else now
        self.watchdog.start()
        self.housekeeper.run_due(now)
        self._check_memory(now)
        if self.running.draining and not self.running_count and not self.stopping:
            self.housekeeper.reclaim()  # running nothing now: take the suspect that waits for such a worker
        self._wakeup.clear()
        free = self._free_slots()
        if free <= 0:
            if block and not self.stopping:
                self._wakeup.wait(timeout=self.housekeeper.seconds_to_next())
            return 0
        started, drained = self.claimer.claim_and_start(free)
        # A claim that got fewer jobs than it asked for emptied its queue: wait for the doorbell
        # (any later enqueue rings it) instead of claiming again for nothing.
        if (started == 0 or drained) and block and not self.stopping:
            started += self._wait_for_work()
        return started

    def shutdown(self) -> bool:
        """Wait for running jobs (SHUTDOWN_TIMEOUT), renewing their leases; record them; leave the groups."""
        self.finisher.start()  # jobs a take-over started outside run() are recorded too
        self._give_back_unstarted()
        deadline = time.monotonic() + self.settings.shutdown_timeout
        while self.running_count and time.monotonic() < deadline and not self.hard_stopped:
            self.housekeeper.while_stopping()  # keep the leases until the running jobs are recorded
            self._wakeup.wait(timeout=0.1)
            self._wakeup.clear()
        if self.hard_stopped:
            self._give_back_running()
        left = self.running_count
        self.finisher.stop()
        self.watchdog.stop()
        self.dispatcher.stop(wait=not self.hard_stopped)
        if left:
            logger.warning(
                "worker %s exits with %d job(s) still running after SHUTDOWN_TIMEOUT; another worker "
                "takes them over after STALLED_TIMEOUT",
                self.name,
                left,
            )
        self._leave()
        logger.info("worker %s stopped after %d jobs", self.name, self.jobs_done)
        return left == 0

    def _give_back_running(self) -> None:
        """After a hard stop: record what already finished, then send the jobs still running back to
        waiting for another worker at once (attempt not counted): this process exits, and they did
        nothing wrong."""
        self.finisher.stop(timeout=1.0)
        self.dispatcher.take_unstarted()  # no thread may start a job given back (they are in the snapshot)
        left = self.running.snapshot()  # the finisher recorded (and removed) those that ended
        if not left:
            return
        given = self._give_back(left, "running")
        logger.warning(
            "worker %s gave %d running job(s) back for another worker (a handler ignored its stop)", self.name, given
        )
        self.running.forget(left)

    def _give_back_unstarted(self) -> None:
        """A stopping worker starts none of the jobs it prefetched: they go back to waiting at once
        (attempt not counted) for another worker, instead of holding up the stop."""
        if not self.prefetch:  # without a prefetch a job waits for a thread only until one that is free takes it
            return
        unstarted = self.dispatcher.take_unstarted()
        if not unstarted:
            return
        given = self._give_back(unstarted, "prefetched")
        self.running.forget(unstarted)
        for running in unstarted:
            self.slots.finished(running.queue)
        logger.info("worker %s gave %d prefetched job(s) back to waiting", self.name, given)

    def _give_back(self, jobs: list[RunningJob], what: str) -> int:
        """Send ``jobs`` (leased to this worker) back to waiting; tries for 5 seconds while Redis
        does not answer, then leaves them to a take-over (STALLED_TIMEOUT). Returns how many went."""
        entries = [(running.queue, running.entry_id, running.job_id) for running in jobs]
        throttle = ErrorThrottle(cap=0.5)
        give_up = time.monotonic() + 5.0
        while True:
            try:
                return self.store.give_back(self.name, entries)
            except REDIS_ERRORS as exc:
                if time.monotonic() >= give_up:
                    logger.error("worker %s could not give back %d %s job(s): %s", self.name, len(jobs), what, exc)
                    return 0
                time.sleep(throttle.failed(f"giving back {what} jobs", exc))

    def check_partitions(self) -> None:
        """Record each served queue's number of partitions, or raise PartitionCountChanged when
        another is recorded while the old layout still holds active jobs (it would go unserved)."""
        for queue in self.queues:
            self.store.partition_counts.ensure(queue, partitions.count_of(self.settings, queue))

    def _check_partitions_once_answered(self) -> None:
        """``check_partitions``, tried again while Redis does not answer (a worker started during an
        outage waits for Redis, as its loop would), until it answers or the worker is stopped."""
        while not self.stopping:
            try:
                self.check_partitions()
                self._throttle.succeeded()  # the loop's first error must not start from a long backoff
                return
            except REDIS_ERRORS as exc:
                self._stopping.wait(self._throttle.failed("checking the queues' partitions", exc))

    def announce(self) -> None:
        """Log the start line, and warn when Redis may evict the queues' keys."""
        logger.info(
            "worker %s started: queues %s, concurrency %d%s, redis %s",
            self.name,
            ", ".join(self.queues),
            self.concurrency,
            f", prefetch {self.prefetch}" if self.prefetch else "",
            self.settings.safe_redis_url,
        )
        try:
            warning = self.store.eviction_warning()
        except REDIS_ERRORS as exc:
            warning = None
            self._throttle.failed("checking Redis", exc)
        if warning:
            logger.warning(warning)

    def info(self) -> dict[str, Any]:
        """What the admin shows about this worker."""
        host, pid, _ = ([*self.name.split(":"), "", "", ""])[:3]
        return {
            "host": host,
            "pid": pid,
            "queues": ",".join(self.queues),
            "concurrency": self.concurrency,
            "prefetch": self.prefetch,
            "started": int(self.started_at * 1000),
            "jobs_done": self.jobs_done,
            "running": self.running_count,
        }

    def _leave(self) -> None:
        try:
            self.store.unregister_worker(self.name)
            for queue in self.physical:
                self.store.forget_consumers(queue, 0, only=self.name)
            self.store.scripts.forget_replies()
        except REDIS_ERRORS as exc:
            logger.warning("worker %s could not unregister cleanly: %s", self.name, exc)

    # -- claiming -----------------------------------------------------------------------------
    def _free_slots(self) -> int:
        """Jobs this worker can start now (none beside a suspect, nor while draining for one). With
        ``max_jobs`` reached and nothing running, the worker stops."""
        if not self.running.may_start():
            return 0
        free = self.slots.free()
        if self.max_jobs is not None and free <= 0 and self.running_count == 0 and not self.stopping:
            logger.info("worker %s: started its %d jobs (--max-jobs); exiting", self.name, self.max_jobs)
            self.limit_reached = True
            self.request_stop()
        return free

    def _check_memory(self, now: float) -> None:
        """With ``max_memory``: past it, stop claiming, let the running jobs finish, and exit. Only once
        a job has started: a process that starts over the limit still makes progress before it is
        replaced, instead of being replaced over and over without running anything."""
        if self.max_memory is None or self.stopping or now < self._next_memory_check or not self.jobs_started:
            return
        self._next_memory_check = now + MEMORY_CHECK_INTERVAL
        used = resident_mb()
        if used > self.max_memory:
            logger.warning(
                "worker %s uses %.0f MB, over --max-memory %g: finishing %d running job(s), then exiting",
                self.name,
                used,
                self.max_memory,
                self.running_count,
            )
            self.limit_reached = True
            self.request_stop()

    def _wait_for_work(self) -> int:
        """Block until a job is enqueued (or a chore or a delayed job is due); returns jobs started."""
        if self.burst and self.running_count == 0 and self.claimer.queues_idle():
            logger.info("worker %s: queues are idle, burst mode exits", self.name)
            self.request_stop()
            return 0
        timeout = min(self.claimer.block_ms(), int(self.housekeeper.seconds_to_next() * 1000))
        if timeout <= 0:
            return 0
        started = self.claimer.wait_then_claim(timeout, self._free_slots())
        if started is None:  # every queue at its limit: wait for a slot (the finisher sets the event)
            self._wakeup.wait(timeout=timeout / 1000)
            return 0
        return started

    # -- what handlers call -------------------------------------------------------------------
    def _write_log(self, job: Job, message: Any) -> None:
        text = serialization.dumps(serialization.normalize(message, "message"))
        self.store.append_log(job.queue, job.id, text)
