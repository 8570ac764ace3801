"""Cron: recurring jobs, from an expression in the code to a job in a queue, each tick once.

- ``expression.py``: parse a cron expression and find its ticks (UTC epoch seconds), daylight-saving
  changes included. Pure.
- ``describe.py``: an expression in plain English, for the admin. Pure.
- ``schedules.py``: the schedules the code defines (``@task(cron=...)``, ``TEMPOTASK["CRONS"]``) and
  their system checks. No Redis.
- ``beat.py``: ``CronBeat``, the loop that fires due ticks through Redis (``manage.py runcron``).
- ``api.py``: list, pause, resume and run schedules, and list the live beats, from any process.
- ``runtime.py``: runtime schedules: ``add_cron``, ``update_cron``, ``delete_cron`` (versions).
- ``loaded.py``: the runtime schedules as one beat has loaded them.

Redis keeps each schedule's state in ``storage/crons.py``.
"""

from tempotask_django.cron.api import list_beats, list_crons, pause_cron, resume_cron, run_cron_now
from tempotask_django.cron.beat import CronBeat, TickResult
from tempotask_django.cron.describe import describe
from tempotask_django.cron.expression import CronExpression, validate_cron
from tempotask_django.cron.runtime import add_cron, delete_cron, update_cron
from tempotask_django.cron.schedules import CronSchedule, collect_schedules, schedule_problems

__all__ = [
    "CronBeat",
    "CronExpression",
    "CronSchedule",
    "TickResult",
    "add_cron",
    "collect_schedules",
    "delete_cron",
    "describe",
    "list_beats",
    "list_crons",
    "pause_cron",
    "resume_cron",
    "run_cron_now",
    "schedule_problems",
    "update_cron",
    "validate_cron",
]
