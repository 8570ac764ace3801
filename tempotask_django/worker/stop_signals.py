"""Stop signals (SIGTERM, SIGINT) that are safe at any instant.

A Python signal handler runs in the main thread, between two of its bytecodes: possibly while that
thread holds a lock (the running-jobs table's, an Event's, a logging handler's). A handler that
takes such a lock waits on its own thread forever. So the handlers here only count the signal and
write one byte to a pipe (the self-pipe); whatever the signal means (log, stop the worker, force
the exit) is done by whoever reads the pipe: a watcher thread (``watch_stop_signals``), or the
supervisor's own loop, which waits on the pipe (``SignalPipe.wait``).
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
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, self.handle)
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
        for signum in self.signals:
            signal.signal(signum, signal.SIG_DFL)
        os.close(self._read_fd)
        os.close(self._write_fd)


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
