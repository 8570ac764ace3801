"""The ``@task`` decorator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, overload

from tempotask_django import validation
from tempotask_django.cron import validate_cron
from tempotask_django.registry import Task, registry


@overload
def task(func: Callable[..., Any], /) -> Task: ...


@overload
def task(
    *,
    name: str | None = None,
    queue: str | None = None,
    attempts: int | None = None,
    retry_delay: float | None = None,
    backoff: str | None = None,
    priority: int = 0,
    description: str = "",
    cron: str | None = None,
    timezone: str | None = None,
    data: Any = None,
) -> Callable[[Callable[..., Any]], Task]: ...


def task(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    queue: str | None = None,
    attempts: int | None = None,
    retry_delay: float | None = None,
    backoff: str | None = None,
    priority: int = 0,
    description: str = "",
    cron: str | None = None,
    timezone: str | None = None,
    data: Any = None,
) -> Task | Callable[[Callable[..., Any]], Task]:
    """Register ``func(job, ctx)`` as a task; use bare (``@task``) or with options.

    Parameters: ``name`` (default: the function's name), ``queue`` (default: DEFAULT_QUEUE),
    ``attempts`` (total tries), ``retry_delay`` (seconds), ``backoff`` ("fixed" or "exponential"),
    ``priority`` (higher runs first), ``description``, and for recurring jobs ``cron`` (a cron
    expression), ``timezone`` and ``data`` (the data each cron job gets). Invalid options raise
    ConfigurationError here, when the module is imported.

    Example::

        @task(queue="notifications", attempts=3, retry_delay=5, backoff="exponential")
        def send_notification(job, ctx):
            job.log(f"sending to {job.data['user_id']}")
            return {"sent": True}
    """

    def decorate(function: Callable[..., Any]) -> Task:
        task_name = name or function.__name__
        where = f"@task {task_name!r} ({function.__module__})"
        validation.task_options(
            where,
            name=task_name,
            queue=queue,
            attempts=attempts,
            retry_delay=retry_delay,
            backoff=backoff,
            priority=priority,
        )
        if cron is not None:
            validate_cron(cron, timezone, where=where)
        if data is not None:
            validation.json_data(data, where)
        new_task = Task(
            func=function,
            name=task_name,
            queue=queue,
            attempts=attempts,
            retry_delay=None if retry_delay is None else float(retry_delay),
            backoff=backoff,
            priority=priority,
            description=description or (function.__doc__ or "").strip().split("\n")[0],
            cron=cron,
            timezone=timezone,
            cron_data=data,
            module=function.__module__,
        )
        return registry.register(new_task)

    if func is not None:
        return decorate(func)
    return decorate
