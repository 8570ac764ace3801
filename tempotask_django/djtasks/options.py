"""The ``OPTIONS`` of a TempotaskBackend in the ``TASKS`` setting.

Django's Tasks API has no notion of retries, so the retry policy of Django tasks lives here::

    TASKS = {"default": {
        "BACKEND": "tempotask_django.backends.TempotaskBackend",
        "QUEUES": ["default", "emails"],
        "OPTIONS": {
            "ATTEMPTS": 3, "RETRY_DELAY": 10, "BACKOFF": "exponential",   # every task of this backend
            "PER_TASK": {"myapp.tasks.send_email": {"ATTEMPTS": 5}},       # by the task's module path
            "ENQUEUE_ON_COMMIT": False,
        },
    }}

A retry option left out falls back to PER_TASK, then to the backend's value, then to TEMPOTASK's
ATTEMPTS / RETRY_DELAY / BACKOFF. ``validate()`` lists every problem (reported by ``manage.py check``
through the backend's ``check()``); ``parse()`` raises on the first one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tempotask_django import validation
from tempotask_django.validation import Problem

RETRY_CHECKS: dict[str, Callable[[Any], Any]] = {
    "ATTEMPTS": validation.attempts,
    "RETRY_DELAY": lambda value: validation.seconds(value, "RETRY_DELAY"),
    "BACKOFF": validation.backoff,
}
OPTION_KEYS = (*RETRY_CHECKS, "PER_TASK", "ENQUEUE_ON_COMMIT")
OPTIONS_HINT = 'Example: "OPTIONS": {"ATTEMPTS": 3, "PER_TASK": {"myapp.tasks.send_email": {"ATTEMPTS": 5}}}'


@dataclass(frozen=True)
class RetryPolicy:
    """attempts / retry_delay / backoff for a job; None means "use the next default"."""

    attempts: int | None = None
    retry_delay: float | None = None
    backoff: str | None = None

    def over(self, fallback: RetryPolicy) -> RetryPolicy:
        return RetryPolicy(
            attempts=fallback.attempts if self.attempts is None else self.attempts,
            retry_delay=fallback.retry_delay if self.retry_delay is None else self.retry_delay,
            backoff=fallback.backoff if self.backoff is None else self.backoff,
        )

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any]) -> RetryPolicy:
        delay = raw.get("RETRY_DELAY")
        return cls(raw.get("ATTEMPTS"), None if delay is None else float(delay), raw.get("BACKOFF"))


@dataclass(frozen=True)
class BackendOptions:
    defaults: RetryPolicy = RetryPolicy()
    per_task: dict[str, RetryPolicy] = field(default_factory=dict)
    enqueue_on_commit: bool = False

    def retry_for(self, module_path: str) -> RetryPolicy:
        """The retry policy of one task (by ``Task.module_path``)."""
        return self.per_task.get(module_path, RetryPolicy()).over(self.defaults)


def _retry_problems(raw: Mapping[str, Any], where: str, allowed: tuple[str, ...]) -> list[Problem]:
    problems: list[Problem] = []
    for key, value in raw.items():
        if key not in allowed:
            problems.append(Problem("tempotask.E101", f"{where} has an unknown key {key!r}.", f"Known keys: {allowed}"))
            continue
        check = RETRY_CHECKS.get(key)
        if check is None:
            continue
        try:
            check(value)
        except (TypeError, ValueError) as exc:
            problems.append(Problem("tempotask.E102", f"{where}[{key!r}]: {exc}.", OPTIONS_HINT))
    return problems


def _per_task_problems(per_task: Any, where: str) -> list[Problem]:
    if not isinstance(per_task, Mapping):
        return [Problem("tempotask.E103", f"{where} must be a dict of task module path -> options.", OPTIONS_HINT)]
    problems: list[Problem] = []
    for path, overrides in per_task.items():
        if not isinstance(path, str) or "." not in path:
            msg = f"{where} key {path!r} is not a task's module path."
            problems.append(Problem("tempotask.E103", msg, "Use the dotted path, e.g. 'myapp.tasks.send_email'."))
        elif not isinstance(overrides, Mapping):
            problems.append(Problem("tempotask.E103", f"{where}[{path!r}] must be a dict.", OPTIONS_HINT))
        else:
            problems += _retry_problems(overrides, f"{where}[{path!r}]", tuple(RETRY_CHECKS))
    return problems


def validate(raw: Any, alias: str) -> list[Problem]:
    """Every problem of one backend's OPTIONS, without raising."""
    where = f"TASKS[{alias!r}]['OPTIONS']"
    if not isinstance(raw, Mapping):
        return [Problem("tempotask.E101", f"{where} must be a dict.", OPTIONS_HINT)]
    problems = _retry_problems(raw, where, OPTION_KEYS)
    if "PER_TASK" in raw:
        problems += _per_task_problems(raw["PER_TASK"], f"{where}['PER_TASK']")
    if not isinstance(raw.get("ENQUEUE_ON_COMMIT", False), bool):
        msg = f"{where}['ENQUEUE_ON_COMMIT'] must be True or False, not {raw['ENQUEUE_ON_COMMIT']!r}."
        problems.append(Problem("tempotask.E102", msg, "Default: False (enqueue at once, as Django's backends do)."))
    return problems


def parse(raw: Any, alias: str) -> BackendOptions:
    """Validated options; raises ConfigurationError naming the first problem."""
    problems = validate(raw, alias)
    validation.raise_first(problems)
    per_task = {path: RetryPolicy.from_raw(overrides) for path, overrides in raw.get("PER_TASK", {}).items()}
    return BackendOptions(RetryPolicy.from_raw(raw), per_task, raw.get("ENQUEUE_ON_COMMIT", False))
