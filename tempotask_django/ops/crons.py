"""Cron schedule actions of ``manage.py tempotask crons``: list (code, settings and runtime
schedules, SOURCE says which), pause, resume, run now.

They act on the schedules registered in Redis (a beat registers them when it starts), through the
cron API the admin's buttons call, and write the admin's LogEntry when run with ``--user``.
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin.models import ADDITION, CHANGE
from django.core.management.base import CommandError

from tempotask_django.exceptions import CronNotFound, TaskNotRegistered
from tempotask_django.models import VIEW
from tempotask_django.ops import backend, cli
from tempotask_django.ops.audit import Operator
from tempotask_django.views.crons import LOG_PREFIX

HEADERS = (
    "NAME",
    "TASK",
    "SCHEDULE",
    "TIMEZONE",
    "QUEUE",
    "NEXT RUN (UTC)",
    "LAST RUN (UTC)",
    "LAST JOB",
    "PAUSED",
    "OVERLAP",
    "SOURCE",
)


def _as_dict(cron: backend.CronInfo) -> dict[str, Any]:
    return {
        "name": cron.name,
        "task": cron.task,
        "expression": cron.expression,
        "description": cron.description,
        "timezone": cron.timezone,
        "queue": cron.queue,
        "data": cron.data,
        "next_run": cron.next_run,
        "last_run": cron.last_run,
        "last_job_id": cron.last_job_id,
        "last_job_status": cron.last_job_status,
        "paused": cron.paused,
        "runs": cron.runs,
        "overlap": cron.overlap,
        "skipped": cron.skipped,
        "source": cron.source,
        "version": cron.version,
    }


def list_crons(operator: Operator, as_json: bool = False) -> str:
    """The registered schedules as a table, or as JSON (a list of objects) with ``as_json``."""
    operator.require(VIEW)
    crons = backend.crons()
    if as_json:
        return cli.as_json([_as_dict(cron) for cron in crons])
    if not crons:
        return "No cron schedule is registered in Redis (a beat registers them when it starts: manage.py runcron)."
    rows = [
        (
            cron.name,
            cron.task,
            cron.expression,
            cron.timezone,
            cron.queue,
            cli.moment(cron.next_run),
            cli.moment(cron.last_run),
            f"{cron.last_job_id} ({cron.last_job_status})" if cron.last_job_id else None,
            "yes" if cron.paused else "no",
            cron.overlap,
            cron.source,
        )
        for cron in crons
    ]
    return cli.table(HEADERS, rows)


def pause(operator: Operator, name: str) -> str:
    operator.require("pause_cron")
    try:
        backend.pause_cron(name)
    except CronNotFound as exc:
        raise CommandError(str(exc)) from None
    operator.record(CHANGE, f"{LOG_PREFIX}{name}", f"cron schedule {name}", "Paused.")
    return f"Cron schedule {name} is paused: its ticks are skipped until it is resumed."


def resume(operator: Operator, name: str) -> str:
    operator.require("pause_cron")
    try:
        backend.resume_cron(name)
    except CronNotFound as exc:
        raise CommandError(str(exc)) from None
    operator.record(CHANGE, f"{LOG_PREFIX}{name}", f"cron schedule {name}", "Resumed.")
    return f"Cron schedule {name} is resumed: it fires again from its next tick."


def run(operator: Operator, name: str) -> str:
    """Enqueue a job of the schedule now; its own ticks are unaffected."""
    operator.require("run_cron")
    try:
        job_id = backend.run_cron_now(name)
    except CronNotFound as exc:
        raise CommandError(str(exc)) from None
    except (TaskNotRegistered, TypeError, ValueError) as exc:  # e.g. a task this process does not know
        raise CommandError(f"cron schedule {name} could not run: {exc}") from None
    queue = backend.cron_queue(name) or "?"
    operator.record(ADDITION, f"{queue}/{job_id}", f"job {job_id} on {queue}", f"Ran cron schedule {name} now.")
    return f"Cron schedule {name} ran now: job {job_id} was added to {queue}."
