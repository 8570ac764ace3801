"""Run several worker processes and keep them running.

The parent forks one child per process (Django is already set up, so children start fast),
forwards SIGTERM/SIGINT to them, and starts a new child when one dies unexpectedly (SIGKILL,
out of memory), so capacity comes back by itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable

from django.db import connections

from tempotask_django.storage.connection import reset_default_store

logger = logging.getLogger("tempotask")

# A child that dies this soon after starting is restarted only after this pause, seconds.
RESTART_PAUSE = 1.0


class Supervisor:
    """Forks ``processes`` children, each running ``child_main()`` (which returns an exit code)."""

    def __init__(self, processes: int, child_main: Callable[[], int]) -> None:
        self.processes = processes
        self.child_main = child_main
        self.children: dict[int, float] = {}  # pid -> start time
        self.stopping = False

    def _spawn(self) -> None:
        connections.close_all()
        reset_default_store()
        pid = os.fork()
        if pid == 0:  # child
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 1
            try:
                code = self.child_main()
            except BaseException:
                logger.exception("worker process crashed")
            finally:
                logging.shutdown()
                os._exit(code)
        self.children[pid] = time.monotonic()
        logger.info("started worker process %d", pid)

    def _forward(self, signum: int, frame: object) -> None:
        if self.stopping:
            logger.warning("second stop signal: killing worker processes")
            for pid in self.children:
                _kill(pid, signal.SIGKILL)
            return
        self.stopping = True
        for pid in self.children:
            _kill(pid, signum)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._forward)
        signal.signal(signal.SIGINT, self._forward)
        for _ in range(self.processes):
            self._spawn()
        worst = 0
        while self.children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            started = self.children.pop(pid, time.monotonic())
            code = os.waitstatus_to_exitcode(status)
            # Exit code 0 is a child's own decision (--burst, --max-jobs): only crashes are replaced,
            # and a replaced crash does not make the whole run fail.
            if self.stopping or code == 0:
                worst = max(worst, 0 if code == 0 else 1)
            else:
                logger.error("worker process %d exited with %d; starting a new one", pid, code)
                if time.monotonic() - started < RESTART_PAUSE:
                    time.sleep(RESTART_PAUSE)
                if not self.stopping:
                    self._spawn()
        return worst


def _kill(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
