"""Cron schedules as the code defines them: ``@task(cron=...)`` and ``TEMPOTASK["CRONS"]``.

``collect_schedules()`` builds every schedule (raising ConfigurationError on the first mistake);
``schedule_problems()`` lists every mistake for ``manage.py check`` (ids tempotask.E007-E010)
without touching Redis. Data larger than MAX_PAYLOAD_BYTES (E010) is reported but not refused
here: the beat skips that schedule's ticks alone, so one schedule never stops the others. The beat
(beat.py) turns these definitions into jobs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings as django_settings

from tempotask_django import partitions, serialization, validation
from tempotask_django.conf import DEFAULTS, raw_settings
from tempotask_django.cron.describe import describe
from tempotask_django.cron.expression import CronExpression
from tempotask_django.decorators import Task
from tempotask_django.exceptions import ConfigurationError
from tempotask_django.registry import TaskRegistry, registry
from tempotask_django.validation import Problem

CRON_KEYS = {"task", "cron", "data", "queue", "timezone", "attempts", "priority", "overlap"}
# What a tick does while the schedule's previous run is still waiting or processing: "allow" (run
# anyway), "skip" (enqueue nothing; the history says so), "queue" (wait for it to end, at most one).
OVERLAP_CHOICES = ("allow", "skip", "queue")
REQUIRED_CRON_KEYS = ("task", "cron")
# Schedule names become part of job ids ("cron:<name>:<tick>"), so they use job-id characters.
SCHEDULE_NAME = re.compile(r"^[A-Za-z0-9_.@+=\-]{1,150}$")
CRONS_HINT = (
    'TEMPOTASK["CRONS"] = {"nightly-report": {"task": "build_report", "cron": "0 3 * * *", '
    '"data": {...}, "queue": "reports", "timezone": "Europe/Paris", "attempts": 3, "priority": 0, "overlap": "skip"}}'
)

OVERSIZE_HINT = (
    "Keep a schedule's data small: store large data elsewhere (a file, a table) and pass a reference, "
    "or raise MAX_PAYLOAD_BYTES."
)


@dataclass(frozen=True)
class CronSchedule:
    """One recurring job: which task, when (``cron``), and the job options of each run."""

    name: str
    task: str
    cron: CronExpression
    queue: str
    data: Any = None
    attempts: int | None = None
    priority: int | None = None
    source: str = "task"  # "task" (@task(cron=...)), "settings" (TEMPOTASK["CRONS"]) or "runtime"
    overlap: str = "allow"  # see OVERLAP_CHOICES
    version: int = -1  # runtime schedules: the version in Redis this definition is (-1: code)

    @property
    def expression(self) -> str:
        return self.cron.expression

    @property
    def timezone(self) -> str:
        return self.cron.timezone

    def job_id(self, tick: int) -> str:
        """The id of the job for the tick at ``tick`` (UTC epoch seconds): the same in every beat."""
        return f"cron:{self.key_name}:{tick}"

    @property
    def key_name(self) -> str:
        return id_part(self.name)

    def definition(self) -> dict[str, str]:
        """What Redis keeps about the definition, for every process and the admin to read."""
        return {
            "name": self.name,
            "task": self.task,
            "expression": self.expression,
            "timezone": self.timezone,
            "description": describe(self.expression),
            "queue": self.queue,
            "data": serialization.dumps(self.data),
            "attempts": "" if self.attempts is None else str(self.attempts),
            "priority": "" if self.priority is None else str(self.priority),
            "overlap": self.overlap,
            "source": self.source,
        }


def id_part(name: str) -> str:
    """A schedule name as it appears in job ids (task names may hold characters job ids do not)."""
    if SCHEDULE_NAME.match(name):
        return name
    return "h-" + hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:16]


def default_timezone() -> str:
    """Django's TIME_ZONE, the timezone of schedules that name none."""
    return getattr(django_settings, "TIME_ZONE", None) or "UTC"


def _from_task(task: Task, default_queue: str) -> CronSchedule:
    assert task.cron is not None
    where = f"@task {task.name!r} ({task.module})"
    cron = CronExpression.parse(task.cron, task.timezone or default_timezone(), where=where)
    data = serialization.normalize(task.cron_data) if task.cron_data is not None else None
    return CronSchedule(
        task.name,
        task.name,
        cron,
        task.queue or default_queue,
        data,
        task.attempts,
        task.priority,
        overlap=task.cron_overlap,
    )


def overlap_choice(value: Any) -> str:
    """``value`` when it is an overlap choice; else ValueError listing them."""
    if value not in OVERLAP_CHOICES:
        raise ValueError(f"overlap must be one of {', '.join(repr(c) for c in OVERLAP_CHOICES)}, not {value!r}")
    return str(value)


def _from_settings(name: Any, entry: Any, tasks: TaskRegistry, default_queue: str) -> CronSchedule:
    """One TEMPOTASK["CRONS"] entry; raises _Problem naming what is wrong."""
    where = f"TEMPOTASK['CRONS'][{name!r}]"
    if not isinstance(name, str) or not SCHEDULE_NAME.match(name):
        raise _Problem("tempotask.E007", f"{where}: a schedule name is 1-150 letters, digits or '_.@+=-'.")
    if not isinstance(entry, dict):
        raise _Problem("tempotask.E007", f"{where} must be a dict.")
    unknown = sorted(set(entry) - CRON_KEYS, key=str)
    if unknown:
        raise _Problem("tempotask.E007", f"{where} has unknown key(s) {unknown}; allowed: {sorted(CRON_KEYS)}.")
    missing = [key for key in REQUIRED_CRON_KEYS if key not in entry]
    if missing:
        raise _Problem("tempotask.E007", f"{where} needs {' and '.join(repr(k) for k in missing)}.")
    task_name = entry["task"]
    if not isinstance(task_name, str) or task_name not in tasks:
        known = ", ".join(sorted(t.name for t in tasks)) or "none"
        raise _Problem("tempotask.E008", f"{where} names task {task_name!r}, which is not registered (known: {known}).")
    try:
        cron = CronExpression.parse(entry["cron"], entry.get("timezone") or default_timezone(), where=where)
    except ConfigurationError as exc:
        raise _Problem("tempotask.E009", str(exc)) from None
    task = tasks.get(task_name)
    try:
        validation.task_options(
            where, queue=entry.get("queue"), attempts=entry.get("attempts"), priority=entry.get("priority")
        )
        overlap = overlap_choice(entry.get("overlap", task.cron_overlap))
        data = entry.get("data", task.cron_data)
        if data is not None:
            validation.json_data(data, where)
            data = serialization.normalize(data)
    except ValueError as exc:
        raise _Problem("tempotask.E007", f"{where}: {exc}") from None
    except ConfigurationError as exc:
        raise _Problem("tempotask.E007", str(exc)) from None
    priority = entry.get("priority", task.priority)
    return CronSchedule(
        name,
        task_name,
        cron,
        entry.get("queue") or task.queue or default_queue,
        data,
        entry.get("attempts", task.attempts),
        priority,
        source="settings",
        overlap=overlap,
    )


class _Problem(Exception):
    def __init__(self, check_id: str, message: str) -> None:
        super().__init__(message)
        self.check_id = check_id


def _build(tasks: TaskRegistry, raw: Any) -> tuple[list[CronSchedule], list[Problem]]:
    raw = raw if isinstance(raw, dict) else {}
    default_queue = raw.get("DEFAULT_QUEUE") or "default"
    schedules: list[CronSchedule] = []
    problems: list[Problem] = []
    for task in tasks:
        if task.cron is not None:
            try:
                schedules.append(_from_task(task, default_queue))
            except ConfigurationError as exc:  # a timezone the decorator could not check (TIME_ZONE)
                problems.append(Problem("tempotask.E009", str(exc), "Fix the task's cron or timezone."))
    crons = raw.get("CRONS", {})
    if not isinstance(crons, dict):
        return schedules, [*problems, Problem("tempotask.E007", "TEMPOTASK['CRONS'] must be a dict.", CRONS_HINT)]
    for name, entry in crons.items():
        if name in {schedule.name for schedule in schedules}:
            message = f"TEMPOTASK['CRONS'] defines {name!r}, the name of a task's own @task(cron=...) schedule."
            problems.append(Problem("tempotask.E007", message, "Give the CRONS entry another name."))
            continue
        try:
            schedules.append(_from_settings(name, entry, tasks, default_queue))
        except _Problem as problem:
            problems.append(Problem(problem.check_id, str(problem), CRONS_HINT))
    # A schedule of a partitioned queue lives, with its jobs, in one partition (partitions.for_schedule).
    schedules = [dataclasses.replace(s, queue=partitions.for_schedule(raw, s.queue, s.name)) for s in schedules]
    return sorted(schedules, key=lambda s: s.name), problems


def schedule_problems(tasks: TaskRegistry = registry, raw: Any = None) -> list[Problem]:
    """Every mistake in the cron schedules, as (check id, message, hint); never touches Redis."""
    raw = raw_settings() if raw is None else raw
    schedules, problems = _build(tasks, raw)
    return problems + oversize_data(schedules, _max_payload_bytes(raw))


def oversize_data(schedules: list[CronSchedule], max_bytes: int) -> list[Problem]:
    """The schedules whose data is more than ``max_bytes`` of JSON (tempotask.E010): no tick of
    theirs can be enqueued."""
    problems = []
    for schedule in schedules:
        try:
            serialization.encode(schedule.data, max_bytes=max_bytes, what=f"cron schedule {schedule.name!r}: data")
        except ValueError as exc:
            problems.append(Problem("tempotask.E010", f"{exc}; the beat skips its ticks.", OVERSIZE_HINT))
    return problems


def _max_payload_bytes(raw: Any) -> int:
    value = raw.get("MAX_PAYLOAD_BYTES") if isinstance(raw, dict) else None
    # A wrong value is the settings check's to report (E003); measure against the default meanwhile.
    return value if isinstance(value, int) and not isinstance(value, bool) else int(DEFAULTS["MAX_PAYLOAD_BYTES"])


def collect_schedules(tasks: TaskRegistry = registry, raw: Any = None) -> list[CronSchedule]:
    """Every schedule the code defines, sorted by name. ConfigurationError on the first mistake."""
    schedules, problems = _build(tasks, raw_settings() if raw is None else raw)
    validation.raise_first(problems)
    return schedules
