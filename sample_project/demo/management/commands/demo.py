"""``manage.py demo``: migrate, create an admin user, then run the web server, workers and the beat."""

import os
import signal
import subprocess
import sys
import time

from django.contrib.auth import get_user_model
from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand

from demo import exports, tasks


class Command(BaseCommand):
    help = "Run the whole sample: web server, workers and cron beat (Ctrl-C stops everything)."

    def add_arguments(self, parser):
        parser.add_argument("--port", default="8000")
        parser.add_argument("--no-seed", action="store_true", help="Do not enqueue example jobs at start.")

    def handle(self, *args, **options):
        call_command("migrate", verbosity=0, interactive=False)
        user_model = get_user_model()
        if not user_model.objects.filter(username="admin").exists():
            user_model.objects.create_superuser("admin", "admin@example.com", "admin")
        if not options["no_seed"]:
            self.seed()
        manage = [sys.executable, os.path.abspath(sys.argv[0])]
        commands = [
            [*manage, "runserver", f"127.0.0.1:{options['port']}", "--noreload"],
            [*manage, "runworkers", "--queues", "notifications", "default", "crons"],
        ]
        if "runcron" in get_commands():
            commands.append([*manage, "runcron"])
        children = [subprocess.Popen(command) for command in commands]
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo running: http://127.0.0.1:{options['port']}/ (admin: http://127.0.0.1:{options['port']}/admin/ "
                "user admin / password admin). Ctrl-C stops it."
            )
        )
        stopping = []

        def stop(signum, frame):
            if stopping:
                return  # a second signal would make the workers skip their graceful shutdown
            stopping.append(signum)
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        while not stopping and all(child.poll() is None for child in children):
            time.sleep(0.5)
        crashed = not stopping
        stop(signal.SIGTERM, None)
        codes = [child.wait(timeout=60) for child in children]
        if crashed:
            raise SystemExit(f"a demo process exited unexpectedly (exit codes {codes})")

    def seed(self):
        tasks.send_notification.enqueue({"user_id": 1}, on_commit=False)
        tasks.charge_card.enqueue({"amount": 42}, on_commit=False)
        tasks.build_report.enqueue({}, delay=20, on_commit=False)
        tasks.fetch_weather.enqueue({"city": "Paris"}, on_commit=False)
        exports.export_orders.enqueue("2026-01")
        self.stdout.write(
            "Enqueued example jobs: a notification (with a child email), a failing payment, "
            "a delayed report, an async fetch and an orders export (a Django Tasks framework task)."
        )
