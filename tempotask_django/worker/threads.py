"""The threads that run a worker's jobs: a pool for sync handlers, an event loop for async ones.

A job thread takes the next job from one queue and runs it; nothing else. The worker reserves a
slot before it hands a job over, so the queue never holds more jobs than there are threads, and
a job starts as soon as a thread is free; a worker that prefetches (``--prefetch``) hands over up
to that many more, which wait in the queue for a thread. This is a thread pool without futures: a claimed job
reports how it ended itself (to the finisher), so creating and settling a Future per job would
only add work to the hot path.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Coroutine
from typing import Any

logger = logging.getLogger("tempotask")


class JobThreads:
    """Runs ``run(*args)`` for each submitted job on one of ``size`` threads (started on first use)."""

    def __init__(self, size: int, run: Callable[..., None], name_prefix: str = "tempotask-job") -> None:
        self.size = size
        self._run = run
        self._name_prefix = name_prefix
        self._jobs: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._start_lock = threading.Lock()  # the main loop and the finisher both submit
        # Called by the thread that takes the last job waiting (a worker that prefetches).
        self.on_empty: Callable[[], None] | None = None

    def submit(self, *args: Any) -> None:
        """Queue a job; a free thread runs it (the caller has reserved a slot for it)."""
        if not self._threads:
            self._start_threads()
        self._jobs.put(args)

    def backlog(self) -> int:
        """Jobs submitted that no thread has taken yet (only a worker that prefetches has any)."""
        return self._jobs.qsize()

    def take_unstarted(self) -> list[tuple[Any, ...]]:
        """Take back the jobs no thread has taken yet: no thread will run them."""
        taken: list[tuple[Any, ...]] = []
        while True:
            try:
                args = self._jobs.get_nowait()
            except queue.Empty:
                return taken
            if args is None:  # a stop already asked for: keep it for the threads
                self._jobs.put(None)
                return taken
            taken.append(args)

    def stop(self) -> None:
        """Let every thread exit once it finishes its job. Threads are daemons: a job still running
        past the shutdown timeout does not keep the process alive."""
        for _ in self._threads:
            self._jobs.put(None)

    def _start_threads(self) -> None:
        with self._start_lock:
            if self._threads:
                return
            for i in range(self.size):
                thread = threading.Thread(target=self._loop, name=f"{self._name_prefix}_{i}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def _loop(self) -> None:
        while True:
            args = self._jobs.get()
            if args is None:
                return
            try:
                # Inside the guard: the job is taken, and runs whatever the wake-up call does.
                if self.on_empty is not None and self._jobs.empty():
                    self._wake(self.on_empty)
                self._run(*args)
            except BaseException:  # run() reports outcomes itself; this thread must survive anything
                logger.exception("a job thread caught an error its job did not report")

    @staticmethod
    def _wake(on_empty: Callable[[], None]) -> None:
        try:
            on_empty()
        except Exception:  # the finisher wakes by its deadline anyway (PREFETCH_GATHER_SECONDS)
            logger.exception("a job thread could not wake the finisher")


class InlineJobs(JobThreads):
    """Jobs run on the thread that asks for the next one (``run_next``) instead of on threads of
    their own: the finisher of a worker of one job at a time runs each job itself, between two
    records, with no thread hand-off. ``run`` returns what ``run_next`` does (the job's outcome);
    ``wake`` is called at each submit (it wakes that thread)."""

    def __init__(self, run: Callable[..., Any], wake: Callable[[], None]) -> None:
        super().__init__(0, run)
        self._on_submit = wake

    def submit(self, *args: Any) -> None:
        self._jobs.put(args)
        self._on_submit()

    def stop(self) -> None:
        pass  # no thread of its own

    def run_next(self) -> Any:
        """Run the next job waiting, on this thread, and return what ``run`` returned; None when
        no job waits. ``run`` must not raise: its caller's thread is the finisher's."""
        try:
            args = self._jobs.get_nowait()
        except queue.Empty:
            return None
        return None if args is None else self._run(*args)


class AsyncLoopThread:
    """An event loop on its own thread, for async handlers (started on first use). ``limit``: most
    coroutines passed to ``run_limited`` running at once (the others wait their turn)."""

    def __init__(self, name: str = "tempotask-async", limit: int | None = None) -> None:
        self._name = name
        self._limit = limit
        self._semaphore: asyncio.Semaphore | None = None  # made on the loop, by the first coroutine
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()  # the main loop and the finisher both start jobs

    def loop(self) -> asyncio.AbstractEventLoop:
        """The running event loop, started by the first caller."""
        with self._start_lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._loop.run_forever, name=self._name, daemon=True)
                self._thread.start()
            return self._loop

    @property
    def limited(self) -> bool:
        """True when coroutines must go through ``run_limited``."""
        return self._limit is not None

    async def run_limited(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """Await ``coroutine`` once fewer than ``limit`` others run."""
        assert self._limit is not None
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self._limit)
        async with self._semaphore:
            return await coroutine

    def stop(self, wait: bool = True) -> None:
        """Stop the loop if it was started (a coroutine still running is left behind); ``wait``: for
        its thread to end (not when a handler that never yields may block the loop)."""
        if self._loop is None or self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        if wait:
            self._thread.join(timeout=5)
