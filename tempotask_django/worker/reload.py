"""``--reload``: restart a long-running command when the project's code changes (development).

It uses Django's autoreloader (``django.utils.autoreload``): the same file watcher as
``runserver`` (``get_reloader()``: watchman when available, else polling mtimes), the same protocol
(a parent process runs the command again in a child with ``RUN_MAIN=true``, and starts a new child
when one exits with code 3) and the same ``file_changed`` signal. What differs from
``autoreload.run_with_reloader`` is how the child stops, because a worker holds running jobs:

- ``run_with_reloader`` runs the command in a non-main thread and leaves the main thread to the
  watcher, which ends the process with ``sys.exit(3)`` at the first change. Our commands install
  their stop-signal handlers, which Python allows in the main thread only, and a change must not
  cut running jobs short. So here the command keeps the main thread, the watcher runs in a thread,
  and a change asks for the clean stop a SIGTERM asks for (``stop_signals.request_stop``): no new
  job, running ones finish (within SHUTDOWN_TIMEOUT), then exit 3 for a fresh process.
- Django's parent kills its child with SIGKILL a quarter of a second after Ctrl-C. Here the child
  runs in its own process group (the terminal's Ctrl-C reaches the parent only) and the parent
  forwards each stop signal it gets to the child, then waits for it: Ctrl-C stops cleanly, a second
  Ctrl-C at once, exactly as without ``--reload``. The parent's handlers only record the signal.
- A child that fails (a module that no longer imports, a bad setting) does not end the command, as
  with ``runserver``: the parent, which watches the same files, starts a new child at the next change.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

from django.utils import autoreload

from tempotask_django.worker.stop_signals import STOP_SIGNALS, SignalPipe, request_stop

logger = logging.getLogger("tempotask")

# The child's exit code that asks the parent for a new child (Django's autoreloader uses 3 too).
RELOAD_EXIT_CODE = 3
# How often the parent looks at its child without a signal, and the child at its parent, seconds.
POLL_INTERVAL = 0.5


def run_with_reload(main: Callable[[], int]) -> int:
    """Run ``main()`` (which returns an exit code) in a child process, again after each code change.

    Returns the exit code for the command: the last child's, 0 after a clean stop.
    """
    if os.environ.get(autoreload.DJANGO_AUTORELOAD_ENV) == "true":
        return _run_child(main)
    return _run_parent()


def _run_parent() -> int:
    signals = SignalPipe((*STOP_SIGNALS, signal.SIGCHLD)).install()
    changed = _watch_in_parent(signals)
    args = autoreload.get_child_arguments()
    env = {**os.environ, autoreload.DJANGO_AUTORELOAD_ENV: "true"}
    forwarded = 0
    while True:
        # Its own process group: the terminal's Ctrl-C reaches this process only, which forwards it once.
        changed.clear()
        child = subprocess.Popen(args, env=env, close_fds=False, process_group=0)
        logger.info("reload: started process %d; it restarts when a Python file changes", child.pid)
        while child.poll() is None:
            received = signals.stop_requests
            for _ in range(received - forwarded):
                _signal(child.pid, signal.SIGTERM)
            forwarded = received
            signals.wait(POLL_INTERVAL)
        code = child.returncode
        if signals.stop_requests or code == 0:  # stopped, or done (--burst, --max-jobs)
            return 0 if code == RELOAD_EXIT_CODE else code
        if code != RELOAD_EXIT_CODE:
            logger.error("reload: process %d exited with %d; waiting for a change to start again", child.pid, code)
            while not changed.is_set() and not signals.stop_requests:
                signals.wait(POLL_INTERVAL)
            if signals.stop_requests:
                return code
        logger.info("reload: code changed; starting a new process")


def _watch_in_parent(signals: SignalPipe) -> threading.Event:
    """Watch the files in the parent too, for the changes that follow a failed child."""
    changed = threading.Event()

    def on_change(sender: Any, file_path: Any, **kwargs: Any) -> bool:
        changed.set()
        return True  # the parent never exits for a change

    autoreload.file_changed.connect(on_change, weak=False, dispatch_uid="tempotask-reload-parent")
    reloader = autoreload.get_reloader()
    threading.Thread(
        target=reloader.run, args=(threading.main_thread(),), name="tempotask-reloader", daemon=True
    ).start()
    return changed


def _run_child(main: Callable[[], int]) -> int:
    reloading = threading.Event()

    def on_change(sender: Any, file_path: Any, **kwargs: Any) -> bool:
        if not reloading.is_set():
            reloading.set()
            logger.info("reload: %s changed; restarting after a clean stop", file_path)
            request_stop()
        return True  # we restart ourselves, after the clean stop: not Django's sys.exit(3)

    autoreload.file_changed.connect(on_change, weak=False, dispatch_uid="tempotask-reload")
    reloader = autoreload.get_reloader()
    main_thread = threading.main_thread()
    threading.Thread(target=reloader.run, args=(main_thread,), name="tempotask-reloader", daemon=True).start()
    threading.Thread(target=_stop_when_orphaned, args=(os.getppid(),), name="tempotask-orphan", daemon=True).start()
    code = main()
    reloader.stop()
    return RELOAD_EXIT_CODE if reloading.is_set() and code == 0 else code


def _stop_when_orphaned(parent: int) -> None:
    """A child whose parent died (SIGKILL) stops cleanly instead of running on unwatched."""
    while os.getppid() == parent:
        time.sleep(POLL_INTERVAL)
    logger.warning("reload: the parent process is gone; stopping")
    request_stop()


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
