"""``manage.py runcron``: the cron beat. Several may run at once: each tick still fires once."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from django.core.management.base import BaseCommand

from tempotask_django.cron import CronBeat
from tempotask_django.log_output import configure_logging
from tempotask_django.worker.reload import run_with_reload
from tempotask_django.worker.stop_signals import exit_now, watch_stop_signals


class Command(BaseCommand):
    help = (
        "Enqueue the jobs of cron schedules (@task(cron=...) and TEMPOTASK['CRONS']) on time, until "
        "SIGTERM/SIGINT. Run several for availability: every tick is enqueued exactly once."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--reload", action="store_true", help="Restart when a Python file changes (development).")

    def handle(self, *args: Any, **options: Any) -> None:
        configure_logging(options["verbosity"])
        code = run_with_reload(run_beat) if options["reload"] else run_beat()
        if code:
            sys.exit(code)


def run_beat() -> int:
    """Run one cron beat with signal handling until stopped; returns the exit code (0)."""
    beat = CronBeat(kind="runcron")  # bad schedules fail here, clearly (manage.py check reports them too)
    watch_stop_signals(beat.request_stop, exit_now)  # a second signal exits at once
    beat.run()
    return 0
