"""``manage.py tempotask``: operate queues, jobs and cron schedules without the admin, and check health.

Thin: it parses the command line and calls tempotask_django/ops/. Each action has the admin's
effect; with ``--user NAME`` it checks that user's admin permissions and writes the admin's log.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from tempotask_django.conf import get_settings
from tempotask_django.ops import backend, crons, jobs, queues, stats
from tempotask_django.ops.audit import Operator
from tempotask_django.ops.health import SKIPPABLE, HealthOptions, check_health
from tempotask_django.storage.connection import get_default_store
from tempotask_django.storage.migration import migrate_keys

Options = dict[str, Any]
Action = Callable[[Operator, Options], str]

# What each action does, by its name on the command line.
ACTIONS: dict[str, Action] = {
    "stats": lambda op, o: stats.show(op, o["json"]),
    "pause": lambda op, o: queues.pause(op, o["queue"]),
    "resume": lambda op, o: queues.resume(op, o["queue"]),
    "retry-failed": lambda op, o: queues.retry_failed(op, o["queue"]),
    "purge": lambda op, o: queues.purge(op, o["queue"], o["status"]),
    "retry": lambda op, o: jobs.retry(op, o["job_id"], o["queue"]),
    "delete": lambda op, o: jobs.delete(op, o["job_id"], o["queue"]),
    "cancel": lambda op, o: jobs.cancel(op, o["job_id"], o["queue"]),
    "enqueue": lambda op, o: jobs.enqueue(
        op,
        o["task"],
        o["data"],
        **{name: o[name] for name in ("queue", "priority", "delay", "attempts", "job_id")},
    ),
}
CRON_ACTIONS: dict[str, Action] = {
    "list": lambda op, o: crons.list_crons(op, o["json"]),
    "pause": lambda op, o: crons.pause(op, o["name"]),
    "resume": lambda op, o: crons.resume(op, o["name"]),
    "run": lambda op, o: crons.run(op, o["name"]),
}


class Command(BaseCommand):
    help = "Operate tempotask without the admin: stats, queues, jobs, cron schedules, health."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        as_user = argparse.ArgumentParser(add_help=False)
        as_user.add_argument(
            "--user", metavar="USERNAME", help="Act as this user: check its admin permissions, write the admin log."
        )
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

        def action(name: str, text: str, parent: Any = actions) -> argparse.ArgumentParser:
            return parent.add_parser(name, help=text, description=text, parents=[as_user])

        action("stats", "Jobs per status of every queue, live workers and beats, cron schedules.").add_argument(
            "--json", action="store_true", help="Print JSON."
        )
        for name, text in (
            ("pause", "Pause a queue: workers take no new jobs from it; running ones finish."),
            ("resume", "Resume a paused queue."),
            ("retry-failed", "Queue every failed job of a queue again, with fresh attempts."),
        ):
            action(name, text).add_argument("queue", metavar="QUEUE")
        purge = action("purge", "Delete every completed, failed or cancelled job of a queue, with its logs and errors.")
        purge.add_argument("queue", metavar="QUEUE")
        purge.add_argument("status", metavar="STATUS", help="completed, failed or cancelled")
        for name, text in (
            ("retry", "Queue a failed, cancelled or delayed job again now, with fresh attempts."),
            ("delete", "Delete a job in any status, with its logs and errors."),
            ("cancel", "Cancel a job: a waiting or delayed one never runs, a running one is stopped."),
        ):
            job = action(name, text)
            job.add_argument("job_id", metavar="JOB")
            job.add_argument("--queue", help="The job's queue (needed when several queues hold that id).")
        self._add_enqueue(action("enqueue", "Add a job of a registered task (values as in the admin's form)."))
        cron = actions.add_parser("crons", help="List, pause, resume or run cron schedules.")
        cron_actions = cron.add_subparsers(dest="cron_action", required=True, metavar="CRON_ACTION")
        action("list", "List the cron schedules registered in Redis.", cron_actions).add_argument(
            "--json", action="store_true", help="Print JSON."
        )
        for name, text in (
            ("pause", "Skip a schedule's ticks until it is resumed."),
            ("resume", "Fire a paused schedule again from its next tick."),
            ("run", "Enqueue a job of a schedule now; its own ticks are unaffected."),
        ):
            action(name, text, cron_actions).add_argument("name", metavar="NAME")
        health = "Check Redis, workers, beat, backlog: exit 0 (OK) or 1 (FAIL: reason)."
        self._add_health(actions.add_parser("health", help=health, description=health))
        migrate = (
            "Once after upgrading: move job logs and errors from the old layout (P:{Q}:job:<id>:logs) to the "
            "new one (P:{Q}:logs:<id>). Idempotent and safe while workers run; run it again once the last old "
            "worker has stopped."
        )
        actions.add_parser("migrate-keys", help=migrate, description=migrate)

    @staticmethod
    def _add_enqueue(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("task", metavar="TASK")
        parser.add_argument("--data", default="null", metavar="JSON", help="The job's data as JSON (default: null).")
        parser.add_argument("--queue", help="Default: the task's queue.")
        parser.add_argument("--priority", metavar="N", help="-1000 to 1000, higher runs first.")
        parser.add_argument("--delay", metavar="SECONDS", help="Seconds before it may run.")
        parser.add_argument("--attempts", metavar="N", help="Total tries.")
        parser.add_argument("--job-id", metavar="ID", help="Default: a new random id.")

    @staticmethod
    def _add_health(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--queue", action="append", default=[], metavar="QUEUE", help="A queue to check (repeat; default: all)."
        )
        parser.add_argument("--max-waiting", metavar="N", help="Fail when more jobs wait in a queue.")
        parser.add_argument("--max-age", metavar="SECONDS", help="Fail when a queue's oldest job waited longer.")
        parser.add_argument(
            "--skip", action="append", default=[], metavar="CHECK", help=f"A check not to run: {', '.join(SKIPPABLE)}."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "health":
            self.health(options)
            return
        if options["action"] == "migrate-keys":
            self.migrate_keys()
            return
        operator = Operator.named(options.get("user"))
        is_cron = options["action"] == "crons"
        run = CRON_ACTIONS[options["cron_action"]] if is_cron else ACTIONS[options["action"]]
        try:
            output = run(operator, options)
        except backend.REDIS_ERRORS as exc:
            raise CommandError(f"Redis is unreachable at {get_settings().safe_redis_url}: {exc}") from None
        self.stdout.write(output)

    def migrate_keys(self) -> None:
        store = get_default_store()
        try:
            result = migrate_keys(store.client, store.prefix)
        except backend.REDIS_ERRORS as exc:
            raise CommandError(f"Redis is unreachable at {get_settings().safe_redis_url}: {exc}") from None
        self.stdout.write(f"{result.moved} job log/error list(s) moved to the new key layout.")
        for old in result.conflicts:
            self.stderr.write(f"left in place: {old} (its new key holds something else than a list)")

    def health(self, options: Options) -> None:
        """Print "OK: ..." and return, or print "FAIL: <reasons>" and exit with status 1."""
        try:
            wanted = HealthOptions.parse(options["queue"], options["max_waiting"], options["max_age"], options["skip"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        result = check_health(wanted)
        self.stdout.write(result.summary)
        if not result.ok:
            self.stdout.flush()
            sys.exit(1)
