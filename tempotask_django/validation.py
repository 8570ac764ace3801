"""Checks of user-given options, raising clear errors where the user made the mistake.

Settings and definitions are checked twice: ``manage.py check`` lists every ``Problem``, and the
code that reads them raises the first one (``raise_first``).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

from tempotask_django import serialization
from tempotask_django.exceptions import ConfigurationError

# Queue names appear in Redis keys, URLs and logs.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")
BACKOFF_CHOICES = ("fixed", "exponential")

# Job ids appear in Redis keys, URLs and logs: keep them printable and bounded.
JOB_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:@+=\-]{1,200}$")
# Priorities beyond this would lose FIFO order within a priority (see lua/lib.lua PRIORITY_BAND).
MAX_PRIORITY = 1000
# Longest delay or retry delay, seconds (ten years): keeps due times exact integers of milliseconds.
MAX_SECONDS = 10 * 365 * 86400


class Problem(NamedTuple):
    """One mistake in a setting or a definition, as ``manage.py check`` reports it."""

    check_id: str  # "tempotask.E003"
    message: str
    hint: str


def raise_first(problems: Sequence[Problem]) -> None:
    """Raise ConfigurationError naming the first of ``problems``; nothing when there is none."""
    if problems:
        check_id, message, hint = problems[0]
        raise ConfigurationError(f"{message} ({check_id}) {hint}")


def is_int(value: Any) -> bool:
    """An int, and not a bool (True is an int to Python, never to a user)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """An int or a float, and not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def queue_name(value: Any, error: type[Exception] = ValueError) -> str:
    if not isinstance(value, str) or not NAME_PATTERN.match(value):
        raise error(f"queue {value!r} is not a valid queue name (letters, digits, '_', '.', '-'; 1-100)")
    return value


def job_id(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"job_id must be a string, not {type(value).__name__}")
    if not JOB_ID_PATTERN.match(value):
        raise ValueError(f"job_id {value!r} must be 1-200 characters of letters, digits and '_.:@+=-'")
    return value


def attempts(value: Any) -> int:
    if not is_int(value) or not 1 <= value <= 1000:
        raise ValueError(f"attempts must be an integer from 1 to 1000, not {value!r}")
    return value


def priority(value: Any) -> int:
    if not is_int(value) or not -MAX_PRIORITY <= value <= MAX_PRIORITY:
        raise ValueError(f"priority must be an integer from {-MAX_PRIORITY} to {MAX_PRIORITY}, not {value!r}")
    return value


def seconds(value: Any, what: str) -> float:
    """A non-negative number of seconds, from a number or a timedelta."""
    if isinstance(value, datetime.timedelta):
        value = value.total_seconds()
    if not is_number(value) or not 0 <= value <= MAX_SECONDS:
        raise ValueError(
            f"{what} must be a number of seconds from 0 to {MAX_SECONDS} (ten years) or a timedelta, not {value!r}"
        )
    return float(value)


def timeout(value: Any) -> float:
    """A time limit: a positive number of seconds (or a timedelta), at most MAX_SECONDS."""
    if isinstance(value, datetime.timedelta):
        value = value.total_seconds()
    if not is_number(value) or not 0 < value <= MAX_SECONDS:
        raise ValueError(f"timeout must be a positive number of seconds (or a timedelta), not {value!r}")
    return float(value)


def backoff(value: Any) -> str:
    if value not in BACKOFF_CHOICES:
        raise ValueError(f"backoff must be one of {BACKOFF_CHOICES}, not {value!r}")
    return value


def run_at(value: Any) -> datetime.datetime:
    if not isinstance(value, datetime.datetime):
        raise TypeError(f"run_at must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("run_at must be an aware datetime (use django.utils.timezone.now() + ...)")
    return value


# Names of the app's internal tasks (e.g. "tempotask.django_task") start with this.
RESERVED_NAME_PREFIX = "tempotask."


def _check_name(value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 200 or any(c.isspace() for c in value):
        raise ValueError(f"task name {value!r} must be 1-200 characters without spaces")
    if value.startswith(RESERVED_NAME_PREFIX):
        raise ValueError(f"task name {value!r} starts with {RESERVED_NAME_PREFIX!r}, which is reserved for tempotask")
    return value


# What @task (and Task.using) checks of a task's options.
TASK_OPTIONS = {
    "name": _check_name,
    "queue": queue_name,
    "attempts": attempts,
    "retry_delay": lambda value: seconds(value, "retry_delay"),
    "backoff": backoff,
    "priority": priority,
    "timeout": timeout,
}


def task_options(where: str, **options: Any) -> None:
    """Validate @task options (None means "use the default"), raising ConfigurationError naming the task."""
    for key, value in options.items():
        if value is None:
            continue
        try:
            TASK_OPTIONS[key](value)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"{where}: {exc}") from None


def task_limits(where: str, *, rate_limit: Any = None, max_concurrency: Any = None, limit_key: Any = None) -> None:
    """Validate a task's limit options, raising ConfigurationError naming the task."""
    problem = limit_problem(rate_limit=rate_limit, max_concurrency=max_concurrency, limit_key=limit_key)
    if problem:
        raise ConfigurationError(f"{where}: {problem}")


def limit_problem(*, rate_limit: Any = None, max_concurrency: Any = None, limit_key: Any = None) -> str | None:
    """What is wrong with a task's limit options, or None (``manage.py check`` reports it too)."""
    from tempotask_django import limits

    try:
        if rate_limit is not None:
            limits.parse_rate(rate_limit)
        if max_concurrency is not None:
            limits.check_max_concurrency(max_concurrency)
        if limit_key is not None:
            limits.check_limit_key(limit_key)
            if rate_limit is None and max_concurrency is None:
                raise ValueError("limit_key needs rate_limit or max_concurrency (it says what they apply per)")
    except ValueError as exc:
        return str(exc)
    return None


def json_data(value: Any, where: str) -> None:
    try:
        serialization.normalize(value)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"{where}: data: {exc}") from None
