"""System checks (``manage.py check``) for the TEMPOTASK setting and task definitions.

Ids: E001 not a dict, E002 unknown key, E003 wrong value, E004 bad REDIS_URL, E005 bad QUEUES,
E006 CONTEXT not importable, E007 malformed cron schedule (TEMPOTASK["CRONS"]), E008 a schedule
names an unknown task, E009 invalid cron expression or timezone. Checks never connect to Redis.
"""

from __future__ import annotations

from typing import Any

from django.core.checks import Error, Tags, register

from tempotask_django import conf


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


@register(Tags.compatibility, "tempotask")
def check_crons(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    from tempotask_django.schedules import schedule_problems

    return [Error(message, hint=hint, id=check_id) for check_id, message, hint in schedule_problems()]
