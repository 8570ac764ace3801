"""Running due jobs in the calling thread, one at a time: immediate mode and ``testing.run_jobs``.

``InProcessRunner`` is a Worker's parts driven by hand: the store claims each job, the Worker's
JobRunner calls its handler in the caller's thread (so a test's database transaction and objects
are the handler's too), and the Worker's Finisher decides and records how the attempt ended and
sends its signals. No thread starts, no heartbeat is published, and the consumer the claims
created is removed when the run ends.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Sequence

from asgiref.sync import async_to_sync
from redis.exceptions import ResponseError

from tempotask_django.conf import Settings, get_settings
from tempotask_django.job import Job
from tempotask_django.storage.connection import get_default_store
from tempotask_django.storage.keys import CONSUMER_GROUP
from tempotask_django.storage.store import RedisStore
from tempotask_django.worker.control import JobControl
from tempotask_django.worker.core import Worker
from tempotask_django.worker.running import RunningJob


class InProcessRunner:
    """Runs the due jobs of ``queues`` (first listed first) in the calling thread.

    ``skip_retry_delays``: a failed attempt with attempts left is queued again at once instead of
    after its retry delay (immediate mode), so the same run retries it.
    """

    def __init__(
        self,
        queues: Sequence[str],
        *,
        store: RedisStore | None = None,
        settings: Settings | None = None,
        skip_retry_delays: bool = False,
    ) -> None:
        self.settings = settings or get_settings()
        self.store = store or get_default_store()
        self.queues = list(queues)
        self.skip_retry_delays = skip_retry_delays
        name = f"{socket.gethostname()}:{os.getpid()}:in-process"
        self.worker = Worker(self.queues, concurrency=1, store=self.store, settings=self.settings, name=name)
        self.worker.runner.closes_connections = False  # the caller's connections, maybe inside its transaction
        self._claimed_from: set[str] = set()
        self._grouped: set[str] = set()

    def run(self, max_jobs: int | None = None) -> list[Job]:
        """Run attempts until no queue has a due job (or ``max_jobs`` attempts ran); returns one Job
        per attempt, as recorded after it (see ``run_one``)."""
        ran: list[Job] = []
        try:
            while max_jobs is None or len(ran) < max_jobs:
                job = self.run_next()
                if job is None:
                    break
                ran.append(job)
        finally:
            self.leave()
        return ran

    def run_next(self) -> Job | None:
        """Run one attempt of the first queue with a due job (every partition of a partitioned one);
        None when none has one."""
        for queue in self.worker.physical:
            job = self.run_one(queue)
            if job is not None:
                return job
        return None

    def run_one(self, queue: str) -> Job | None:
        """Claim one due job of ``queue``, run it here and record how it ended. Returns the job as
        stored after that attempt (status, result, errors, logs), or None when nothing was due."""
        if self.settings.immediate and queue not in self._grouped:
            self._create_group(queue)
            self._grouped.add(queue)
        claimed = self.store.claim(queue, self.worker.name, 1)
        self._claimed_from.add(queue)
        if not claimed.jobs:
            return None
        fields = claimed.jobs[0]
        # No time limit here (no watchdog), but a job cancelled before it was claimed does not run.
        control = JobControl(cancel_requested=bool(fields.get("cancel_requested")))
        running = RunningJob(queue, fields.get("id", ""), fields.get("entry", ""), control=control)
        self.worker.running.add(running)
        runner = self.worker.runner
        if runner.is_async(fields):
            outcome = async_to_sync(runner.run_async)(fields, control)
        else:
            outcome = runner.run_sync(fields, control)
        finisher = self.worker.finisher
        finish = finisher.finish_for(running, outcome)
        if self.skip_retry_delays and finish.retry_delay_ms > 0:
            finish = dataclasses.replace(finish, retry_delay_ms=0)
        (result,), _ = self.store.finish_and_claim(self.worker.name, [finish])
        finisher.after_finish(running, outcome, finish, result)
        return self.store.inspect.get_job(queue, running.job_id) or outcome.job

    def leave(self) -> None:
        """Remove this runner's consumer from the queues it claimed from (it holds no job now)."""
        for queue in self._claimed_from:
            self.store.forget_consumers(queue, 0, only=self.worker.name)
        self._claimed_from.clear()

    def _create_group(self, queue: str) -> None:
        # claim.lua creates a missing consumer group when Redis answers NOGROUP; the in-memory
        # Redis answers another error, so the group is made beforehand.
        try:
            self.store.client.xgroup_create(self.store.keys(queue).stream, CONSUMER_GROUP, "0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
