"""``manage.py runworkers``: run worker processes for one or more queues."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from tempotask_django.conf import get_settings
from tempotask_django.cron import CronBeat
from tempotask_django.log_output import configure_logging
from tempotask_django.validation import queue_name
from tempotask_django.worker import Worker
from tempotask_django.worker.reload import run_with_reload
from tempotask_django.worker.stop_signals import exit_now, watch_stop_signals
from tempotask_django.worker.supervisor import REPLACE_EXIT_CODE, Supervisor


def whole_number(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"{value} must be {least} or more")
    return value


def positive_int(text: str) -> int:
    return whole_number(text, 1)


def non_negative_int(text: str) -> int:
    return whole_number(text, 0)


def queue_arg(text: str) -> str:
    return queue_name(text, error=argparse.ArgumentTypeError)


class Command(BaseCommand):
    help = "Process jobs: P worker processes, each running N jobs at once, until SIGTERM/SIGINT."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--queues",
            "-q",
            nargs="+",
            type=queue_arg,
            metavar="QUEUE",
            help="Queues to process, first listed first (default: DEFAULT_QUEUE).",
        )
        parser.add_argument("--concurrency", "-c", type=positive_int, help="Jobs at once per process.")
        parser.add_argument(
            "--prefetch",
            type=non_negative_int,
            default=0,
            metavar="N",
            help="Claim up to N jobs more than run at once; they wait in the process for a free thread "
            "(fewer round trips for many short jobs; default 0).",
        )
        parser.add_argument("--processes", "-p", type=positive_int, default=1, help="Worker processes (default 1).")
        parser.add_argument(
            "--burst", action="store_true", help="Exit 0 once the queues have nothing waiting, due or in progress."
        )
        parser.add_argument(
            "--max-jobs",
            type=positive_int,
            metavar="N",
            help="A process that started N jobs finishes them and exits; with --processes a new one replaces it.",
        )
        parser.add_argument(
            "--max-memory",
            type=positive_int,
            metavar="MB",
            help="A process whose resident memory passed MB megabytes finishes its running jobs and exits; "
            "with --processes a new one replaces it.",
        )
        parser.add_argument(
            "--reload",
            action="store_true",
            help="Restart when a Python file changes, after the running jobs finish (development).",
        )
        parser.add_argument(
            "--with-cron",
            action="store_true",
            help="Also run the cron beat in each worker process (one command for small deployments).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        configure_logging(options["verbosity"])
        settings = get_settings()  # fail here, clearly, on bad settings
        queues = options["queues"] or [settings.default_queue]
        processes = options["processes"]
        check_partitions(queues)

        def child_main() -> int:
            return run_worker(
                queues,
                options["concurrency"],
                options["burst"],
                options["max_jobs"],
                with_cron=options["with_cron"],
                max_memory=options["max_memory"],
                prefetch=options["prefetch"],
                replace_on_limit=processes > 1,  # the supervisor starts a fresh process at once
            )

        def main() -> int:
            return child_main() if processes == 1 else Supervisor(processes, child_main).run()

        code = run_with_reload(main) if options["reload"] else main()
        sys.stdout.flush()
        sys.stderr.flush()
        if code == REPLACE_EXIT_CODE:  # one process, no supervisor: it replaces itself
            restart_in_place()
        # Handler threads still running past SHUTDOWN_TIMEOUT must not hold the process open.
        os._exit(code)


def check_partitions(queues: list[str]) -> None:
    """Refuse to start (CommandError) when a queue's PARTITIONS differs from the number its active
    jobs are spread over, before any process is forked (each would fail the same way, and be
    replaced over and over). Redis not answering is left to the workers, which wait for it."""
    from tempotask_django import partitions
    from tempotask_django.storage.connection import get_default_store, reset_default_store
    from tempotask_django.storage.outage import REDIS_ERRORS
    from tempotask_django.storage.partition_counts import PartitionCountChanged

    settings = get_settings()
    if settings.immediate:
        return
    try:
        counts = get_default_store().partition_counts
        for queue in queues:
            counts.ensure(queue, partitions.count_of(settings, queue))
    except PartitionCountChanged as exc:
        raise CommandError(str(exc)) from None
    except REDIS_ERRORS:
        pass  # each worker checks again once Redis answers
    finally:
        reset_default_store()  # no connection of this process is carried into the forked workers


def restart_in_place() -> None:
    """Run this same command again in this process (same pid, so a process manager sees no exit):
    what a single worker process does after abandoning a handler that ignored its time limit.
    ``sys.orig_argv`` is the command line as started (``python manage.py runworkers ...``,
    ``python -m django runworkers ...``). Threads still running (the abandoned handler) end here."""
    logging.getLogger("tempotask").warning("worker process %d restarts itself", os.getpid())
    logging.shutdown()
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


def run_worker(
    queues: list[str],
    concurrency: int | None,
    burst: bool,
    max_jobs: int | None,
    *,
    with_cron: bool = False,
    max_memory: int | None = None,
    prefetch: int = 0,
    replace_on_limit: bool = False,
) -> int:
    """Run one Worker (and a cron beat thread when ``with_cron``) with signal handling; returns the exit code:
    0, or REPLACE_EXIT_CODE when ``replace_on_limit`` and the worker stopped at ``max_jobs`` or ``max_memory``."""
    beat = CronBeat(kind="runworkers --with-cron") if with_cron else None
    worker = Worker(
        queues, concurrency=concurrency, prefetch=prefetch, burst=burst, max_jobs=max_jobs, max_memory=max_memory
    )

    signalled = threading.Event()

    def request_stop() -> None:
        signalled.set()
        if beat is not None:
            beat.request_stop()
        worker.request_stop()

    watch_stop_signals(request_stop, exit_now)  # a second signal exits at once
    beat_thread = None
    if beat is not None:
        beat_thread = threading.Thread(target=beat.run, name="tempotask-cron", daemon=True)
        beat_thread.start()
    worker.run()
    if beat is not None and beat_thread is not None:
        beat.request_stop()
        beat_thread.join(timeout=5)
    # A handler that ignored its stop still runs on a thread: only a new process frees its slot
    # (unless a stop signal came meanwhile: then the process just exits).
    if worker.hard_stopped and not signalled.is_set():
        return REPLACE_EXIT_CODE
    return REPLACE_EXIT_CODE if replace_on_limit and worker.limit_reached else 0
