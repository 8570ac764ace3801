"""``manage.py runcron``: the cron beat. Several may run at once: each tick still fires once."""

from __future__ import annotations

import logging
import os
import signal
from typing import Any

from django.core.management.base import BaseCommand

from tempotask_django.cron import CronBeat
from tempotask_django.log_output import configure_logging


class Command(BaseCommand):
    help = (
        "Enqueue the jobs of cron schedules (@task(cron=...) and TEMPOTASK['CRONS']) on time, until "
        "SIGTERM/SIGINT. Run several for availability: every tick is enqueued exactly once."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        configure_logging(options["verbosity"])
        beat = CronBeat(kind="runcron")  # bad schedules fail here, clearly (manage.py check reports them too)

        def on_signal(signum: int, frame: object) -> None:
            if beat.stopping:
                logging.getLogger("tempotask").warning("second stop signal: exiting now")
                os._exit(1)
            beat.request_stop()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        beat.run()
