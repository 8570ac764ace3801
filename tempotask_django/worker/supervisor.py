"""Run several worker processes and keep them running.

The parent forks one child per process (Django is already set up, so children start fast),
forwards SIGTERM/SIGINT to them, and starts a new child when one dies unexpectedly (SIGKILL,
out of memory), so capacity comes back by itself, or asks to be replaced (REPLACE_EXIT_CODE). A
second stop signal SIGKILLs the children.

The parent's signal handlers only record the signal and wake its loop (a self-pipe, see
stop_signals.py); the loop forwards signals, reaps children and logs, outside any handler. The
parent starts no thread, so forking it copies no lock held by another thread (with ``--reload``
the file watcher's thread runs beside it; it takes no lock of ours, and Python reinitialises the
import and logging locks in a forked child).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import time
from collections.abc import Callable

from django.db import connections

from tempotask_django.storage.connection import reset_default_store
from tempotask_django.worker.stop_signals import STOP_SIGNALS, SignalPipe

logger = logging.getLogger("tempotask")

# A child that dies this soon after starting is restarted only after this pause, seconds.
RESTART_PAUSE = 1.0
# A child exits with this code to ask for a fresh process in its place at once: it reached a limit
# (--max-jobs, --max-memory) or had to abandon a job that ignored its time limit.
REPLACE_EXIT_CODE = 75
# prctl(2) option: the signal a child gets when its parent dies (linux/prctl.h).
PR_SET_PDEATHSIG = 1
# Longest the loop sleeps without looking at its children, seconds (SIGCHLD wakes it sooner).
REAP_INTERVAL = 0.5


class Supervisor:
    """Forks ``processes`` children, each running ``child_main()`` (which returns an exit code)."""

    def __init__(self, processes: int, child_main: Callable[[], int]) -> None:
        self.processes = processes
        self.child_main = child_main
        self.children: dict[int, float] = {}  # pid -> start time
        self.stopping = False
        self._forwarded = 0  # stop signals acted on so far
        self._signals: SignalPipe | None = None
        self._restart_at: float | None = None  # when to replace crashed children (after RESTART_PAUSE)
        self._missing = 0  # crashed children not replaced yet
        self._worst = 0

    def _spawn(self) -> None:
        connections.close_all()
        reset_default_store()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # child
            _follow_parent(parent)
            if self._signals is not None:
                self._signals.forget()  # the child handles its own signals (run_worker)
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

    def _act_on_signals(self) -> None:
        """Forward the stop signals received since the last call (outside the handler)."""
        assert self._signals is not None
        received = self._signals.stop_requests
        if received > self._forwarded and not self.stopping:
            self.stopping = True
            for pid in list(self.children):
                _kill(pid, signal.SIGTERM)
        if received >= 2 and self._forwarded < 2:
            logger.warning("second stop signal: killing worker processes")
            for pid in list(self.children):
                _kill(pid, signal.SIGKILL)
        self._forwarded = received

    def _reap(self) -> None:
        """Collect the children that exited; note the crashed ones to replace."""
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            started = self.children.pop(pid, time.monotonic())
            code = os.waitstatus_to_exitcode(status)
            # Exit code 0 is a child's own decision (--burst, --max-jobs): only crashes are replaced,
            # and a replaced crash does not make the whole run fail.
            if self.stopping or code == 0:
                # A child that asked to be replaced just as the stop came did not fail.
                self._worst = max(self._worst, 0 if code in (0, REPLACE_EXIT_CODE) else 1)
            elif code == REPLACE_EXIT_CODE:
                logger.info("worker process %d asked to be replaced; starting a new one", pid)
                self._missing += 1
                self._restart_at = min(self._restart_at or time.monotonic(), time.monotonic())
            else:
                logger.error("worker process %d exited with %d; starting a new one", pid, code)
                self._missing += 1
                pause = RESTART_PAUSE if time.monotonic() - started < RESTART_PAUSE else 0.0
                self._restart_at = max(self._restart_at or 0.0, time.monotonic() + pause)

    def _replace_crashed(self) -> None:
        if self.stopping or not self._missing or self._restart_at is None or time.monotonic() < self._restart_at:
            return
        while self._missing:
            self._missing -= 1
            self._spawn()
        self._restart_at = None

    def run(self) -> int:
        self._signals = SignalPipe((*STOP_SIGNALS, signal.SIGCHLD)).install()
        for _ in range(self.processes):
            self._spawn()
        while self.children or (self._missing and not self.stopping):
            self._act_on_signals()
            self._reap()
            self._replace_crashed()
            if self.stopping:
                self._missing = 0
            if self.children or self._missing:
                self._signals.wait(REAP_INTERVAL)
        return self._worst


def _follow_parent(parent: int) -> None:
    """In a new child: take stop signals from the supervisor only, and stop when it dies.

    A terminal's Ctrl-C signals its whole foreground process group: in that group, each child would
    count the terminal's SIGINT and the supervisor's forwarded SIGTERM as two stop signals and exit
    at once, cutting its jobs. In a group of its own, it gets the one forwarded SIGTERM.
    A supervisor killed by SIGKILL forwards nothing: on Linux the kernel then sends the child a
    SIGTERM (PR_SET_PDEATHSIG), a clean stop, instead of leaving it running with no parent.
    """
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        return
    prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the supervisor died before the request was in place
        os.kill(os.getpid(), signal.SIGTERM)


def _kill(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
