"""What the worker's parts share: constants, the running-job record, error throttling, the event loop."""

from __future__ import annotations

import asyncio
import logging
import queue as queue_module
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tempotask_django.conf import Settings
    from tempotask_django.runner import Outcome
    from tempotask_django.slots import Slots
    from tempotask_django.storage.outage import ErrorThrottle
    from tempotask_django.storage.records import ClaimResult
    from tempotask_django.storage.store import RedisStore

logger = logging.getLogger("tempotask")

# Longest single block on the doorbell, ms: bounds how long a stop request waits when idle.
IDLE_BLOCK_MS = 2000
# Finished attempts recorded in one round trip at most.
FINISH_BATCH = 100
# Consumers idle this long (and holding nothing) are deleted from a group, seconds.
CONSUMER_MAX_IDLE = 3600
# Cap of the finisher's retry delay, seconds: finished jobs hold their slots until recorded, so they
# are recorded soon after Redis is back (a refused connection costs nothing).
FINISH_RETRY_CAP = 1.0


@dataclass
class RunningJob:
    queue: str
    job_id: str
    entry_id: str
    started: float = field(default_factory=time.monotonic)
    finishing: bool = False  # handed to the finisher: its lease may be gone any moment, no news
    lost: bool = False  # another worker took it over (or Redis lost it): warned once, not renewed


class AsyncLoopThread:
    """An event loop on its own thread, for async handlers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="tempotask-async", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


class WorkerParts:
    """The state a Worker's parts share, declared once so each part (core, finishing, chores) can
    be read on its own. Worker sets every attribute in ``__init__`` and implements the methods."""

    settings: Settings
    store: RedisStore
    name: str
    queues: list[str]
    concurrency: int
    max_jobs: int | None
    jobs_done: int
    started_at: float
    _running: dict[str, RunningJob]
    _lock: threading.Lock
    _slot_freed: threading.Event
    _done: queue_module.SimpleQueue[tuple[RunningJob, Outcome] | None]
    _slots: Slots
    _more_waiting: dict[str, bool]
    _chores_due: dict[str, float]
    _alone: str | None
    _draining: bool
    _throttle: ErrorThrottle

    @property
    def stopping(self) -> bool:
        raise NotImplementedError

    @property
    def running_count(self) -> int:
        raise NotImplementedError

    def _free_slots(self, reclaiming: bool = False) -> int:
        raise NotImplementedError

    def _start(self, queue: str, fields: dict[str, str]) -> None:
        raise NotImplementedError

    def _claimed(self, queue: str, result: ClaimResult, count: int) -> None:
        raise NotImplementedError
