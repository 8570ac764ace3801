"""Template filters of the admin dashboard."""

from __future__ import annotations

from typing import Any

from django import template

from tempotask_django import serialization
from tempotask_django.djtasks.results import TASK_NAMES as DJANGO_TASK_NAMES
from tempotask_django.job import Job

register = template.Library()


@register.filter
def age(seconds: float | None) -> str:
    """A duration in seconds as an operator reads it: "45 s", "12 min", "3 h 5 min", "2 d 4 h"; a dash for None."""
    if seconds is None or seconds == "":
        return "\u2013"  # an en dash, as the admin shows an empty value
    total = int(float(seconds))
    if total < 60:
        return f"{total} s"
    minutes, _ = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


@register.filter
def task_label(job: Job) -> str:
    """The task a job runs: a Django task's own path ("shop.tasks.send (Django task)"), else the job's name."""
    data = job.data
    if job.name in DJANGO_TASK_NAMES and isinstance(data, dict) and isinstance(data.get("task"), str):
        return f"{data['task']} (Django task)"
    return job.name


@register.filter
def compact_json(value: Any) -> str:
    """A JSON value on one line (a job's progress info); a string as it is."""
    return value if isinstance(value, str) else serialization.dumps(value)
