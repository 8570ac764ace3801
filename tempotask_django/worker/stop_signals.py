"""Stop signals (SIGTERM, SIGINT) that are safe at any instant.

A Python signal handler runs in the main thread, between two of its bytecodes: possibly while that
thread holds a lock (the running-jobs table's, an Event's, a logging handler's). A handler that
takes such a lock waits on its own thread forever. So the handlers here only count the signal and
write one byte to a pipe (the self-pipe); whatever the signal means (log, stop the worker, force
the exit) is done by whoever reads the pipe: a watcher thread (``watch_stop_signals``), or the
supervisor's own loop, which waits on the pipe (``SignalPipe.wait``).

``request_stop()`` lets another thread (the autoreloader's, for ``--reload``) ask for the same clean
stop as a first signal, through the pipe installed in this process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import threading
from collections.abc import Callable, Iterable

logger = logging.getLogger("tempotask")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

# The SignalPipe installed last in this process, and a stop requested before any was installed.
_installed: SignalPipe | None = None
_stop_pending = False
_installed_lock = threading.Lock()


def _fresh_lock_in_child() -> None:
    """A forked child gets a new lock: the parent's may have been held by another thread."""
    global _installed_lock
    _installed_lock = threading.Lock()


os.register_at_fork(after_in_child=_fresh_lock_in_child)


class SignalPipe:
    """Handlers for ``signals`` that count each signal and wake whoever waits on the pipe.

    ``stop_requests`` counts the stop signals (SIGTERM, SIGINT) received so far; any other signal
    of ``signals`` (SIGCHLD for the supervisor) only wakes the reader.
    """

    def __init__(self, signals: Iterable[int] = STOP_SIGNALS) -> None:
        self.signals = tuple(signals)
        self.stop_requests = 0
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)  # a handler must never block
        self._previous: dict[int, object] = {}

    def install(self) -> SignalPipe:
        """Install the handlers (from the main thread, as Python requires)."""
        global _installed, _stop_pending
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, self.handle)
        with _installed_lock:
            _installed = self
            pending, _stop_pending = _stop_pending, False
        if pending:
            self.handle(signal.SIGTERM, None)
        return self

    def handle(self, signum: int, frame: object) -> None:
        """The signal handler: count, and write one byte. Takes no lock, logs nothing."""
        if signum in STOP_SIGNALS:
            self.stop_requests += 1
        with contextlib.suppress(OSError):  # a full pipe already wakes the reader
            os.write(self._write_fd, b"\0")

    def wait(self, timeout: float | None = None) -> None:
        """Block until a signal arrives (or ``timeout`` seconds pass), then empty the pipe."""
        readable, _, _ = select.select([self._read_fd], [], [], timeout)
        if readable:
            os.read(self._read_fd, 4096)

    def forget(self) -> None:
        """Give the signals their default handling back and close the pipe (in a forked child)."""
        global _installed
        with _installed_lock:
            if _installed is self:
                _installed = None
        for signum in self.signals:
            signal.signal(signum, signal.SIG_DFL)
        os.close(self._read_fd)
        os.close(self._write_fd)


def request_stop() -> None:
    """From any thread: the clean stop a first SIGTERM asks for, through this process's SignalPipe
    (or the next one installed, when none is yet)."""
    global _stop_pending
    with _installed_lock:
        pipe = _installed
        if pipe is None:
            _stop_pending = True
            return
    pipe.handle(signal.SIGTERM, None)


def watch_stop_signals(on_stop: Callable[[], None], on_force: Callable[[], None]) -> SignalPipe:
    """Handle SIGTERM/SIGINT for a long-running command: the first calls ``on_stop``, a second one
    ``on_force``, both on a watcher thread, never inside the handler. Call from the main thread."""
    pipe = SignalPipe().install()

    def watch() -> None:
        stopped = False
        while True:
            pipe.wait()
            if pipe.stop_requests >= 1 and not stopped:
                stopped = True
                on_stop()
            if pipe.stop_requests >= 2:
                on_force()
                return

    threading.Thread(target=watch, name="tempotask-signals", daemon=True).start()
    return pipe


def exit_now() -> None:
    """What a second stop signal does: log it and exit at once (code 1), running jobs or not."""
    logger.warning("second stop signal: exiting now")
    logging.shutdown()
    os._exit(1)
