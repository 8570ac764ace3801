"""System checks (``manage.py check``) for the TEMPOTASK setting and task definitions.

Ids: E001 not a dict, E002 unknown key, E003 wrong value, E004 bad REDIS_URL, E005 bad QUEUES,
E006 CONTEXT not importable, E007 malformed cron schedule (TEMPOTASK["CRONS"]), E008 a schedule
names an unknown task, E009 invalid cron expression or timezone, E010 a schedule's data larger than
MAX_PAYLOAD_BYTES, E011 sentinel mode without SENTINELS or SENTINEL_MASTER (or on a unix socket),
E012 malformed SENTINELS, E013 sentinel keys in another REDIS_MODE, E014 cluster mode with OPTIMISE, a
database other than 0 or a unix socket,
E020 a task's rate_limit, max_concurrency or limit_key is invalid (a bad queue
RATE_LIMIT is E005, with the rest of QUEUES), W001 TIMEOUT_GRACE of half STALLED_TIMEOUT or more,
E106 TASKS names TempotaskBackend without Django's Tasks framework.
TempotaskBackend.check() reports E101-E105 and W101 (see backends.py).
Checks never connect to Redis, but one: when QUEUES sets PARTITIONS, E015 compares it with the number
of partitions recorded in Redis (W002 when Redis cannot be reached).
"""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, Tags, Warning, register

from tempotask_django import conf
from tempotask_django.cron import schedule_problems


@register(Tags.compatibility, "tempotask")
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    errors = [Error(message, hint=hint, id=check_id) for check_id, message, hint in conf.validate(conf.raw_settings())]
    if errors:
        return errors
    return check_context()


def check_context() -> list[Error]:
    from django.utils.module_loading import import_string

    path = conf.get_settings().context
    if not path:
        return []
    try:
        import_string(path)
    except ImportError as exc:
        return [
            Error(
                f"TEMPOTASK['CONTEXT'] = {path!r} cannot be imported: {exc}",
                id="tempotask.E006",
                hint="Point it at a dict, or at a function returning one, e.g. 'myproject.jobs.context'.",
            )
        ]
    return []


BACKEND_PATH = "tempotask_django.backends.TempotaskBackend"


def uses_tasks_backend() -> bool:
    """True when the TASKS setting names TempotaskBackend."""
    from django.conf import settings

    backends = getattr(settings, "TASKS", None)
    if not isinstance(backends, dict):
        return False
    return any(isinstance(params, dict) and params.get("BACKEND") == BACKEND_PATH for params in backends.values())


def tasks_framework_available() -> bool:
    from tempotask_django.djtasks import framework_available

    return framework_available()


@register(Tags.compatibility, "tempotask")
def check_tasks_framework(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """TASKS names our backend, but neither django.tasks nor the backport can be imported."""
    if not uses_tasks_backend() or tasks_framework_available():
        return []
    return [
        Error(
            "TASKS uses TempotaskBackend, but Django's Tasks framework is not installed.",
            hint='Use Django 6 or later, or install the backport on Django 5.2: pip install "tempotask-django[tasks]".',
            id="tempotask.E106",
        )
    ]


@register(Tags.compatibility, "tempotask")
def check_crons(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    return [Error(message, hint=hint, id=check_id) for check_id, message, hint in schedule_problems()]


@register(Tags.compatibility, "tempotask")
def check_lease_margin(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Leases are not renewed past a job's deadline, so a handler that ignores JobTimeout must be
    stopped (TIMEOUT_GRACE) well before its lease runs out (STALLED_TIMEOUT), or another worker takes
    the job over and it runs twice at once."""
    raw = conf.raw_settings()
    if not isinstance(raw, dict) or conf.validate(raw):
        return []  # the settings' own errors come first (check_settings)
    settings = conf.get_settings()
    if settings.timeout_grace < settings.stalled_timeout / 2:
        return []
    return [
        Warning(
            f"TIMEOUT_GRACE ({settings.timeout_grace:g} s) is half of STALLED_TIMEOUT "
            f"({settings.stalled_timeout:g} s) or more: a job that ignores its time limit or a cancel "
            "could be taken over by another worker before this one stops it, and run twice at once.",
            hint="Lower TIMEOUT_GRACE below STALLED_TIMEOUT / 2, or raise STALLED_TIMEOUT.",
            id="tempotask.W001",
        )
    ]


@register(Tags.compatibility, "tempotask")
def check_task_limits(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Tasks whose limits are invalid (``@task`` refuses them; a Task built another way is caught here)."""
    from tempotask_django.decorators import LIMIT_OPTIONS
    from tempotask_django.registry import registry
    from tempotask_django.validation import limit_problem

    errors = []
    for task in registry:
        problem = limit_problem(**{key: getattr(task, key) for key in LIMIT_OPTIONS})
        if not problem and task.cron and task.limit_key:
            problem = _cron_data_problem(task)
        if problem:
            errors.append(
                Error(
                    f"task {task.name!r} ({task.module}): {problem}",
                    hint='Example: @task(rate_limit="100/m", max_concurrency=5, limit_key="tenant_id")',
                    id="tempotask.E020",
                )
            )
    return errors


def _cron_data_problem(task: Any) -> str | None:
    """A task with a cron schedule and a limit_key: the schedule's data must hold that field."""
    from tempotask_django.limits import limit_value

    try:
        limit_value(task.cron_data, task.limit_key, task.name)
    except ValueError as exc:
        return f"its cron schedule's data: {exc}"
    return None


@register(Tags.compatibility, "tempotask")
def check_partition_counts(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """A queue's PARTITIONS differs from the number its active jobs are spread over in Redis: its
    workers would refuse to start, and its producers to enqueue (storage/partition_counts.py)."""
    raw = conf.raw_settings()
    if not isinstance(raw, dict) or conf.validate(raw):
        return []
    settings = conf.get_settings()
    queues = raw.get("QUEUES", {})
    if settings.immediate or not any("PARTITIONS" in overrides for overrides in queues.values()):
        return []
    from tempotask_django.storage.connection import get_default_store
    from tempotask_django.storage.outage import REDIS_ERRORS

    try:
        counts = get_default_store().partition_counts
        found = [counts.mismatch(queue, settings.for_queue(queue).partitions) for queue in sorted(queues)]
    except REDIS_ERRORS as exc:
        return [
            Warning(
                f"Could not compare the queues' PARTITIONS with Redis ({settings.safe_redis_url}): {exc}",
                hint="Run the check where Redis can be reached; workers make the same comparison when they start.",
                id="tempotask.W002",
            )
        ]
    return [Error(problem.message + ".", hint=problem.hint, id="tempotask.E015") for problem in found if problem]
