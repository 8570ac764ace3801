"""Tasks: the ``@task`` decorator and the Task it builds."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, overload

from tempotask_django import producer, validation
from tempotask_django.cron.expression import validate_cron
from tempotask_django.exceptions import ConfigurationError
from tempotask_django.registry import registry

if TYPE_CHECKING:
    import datetime

    from tempotask_django.job import Job


# The options that limit how often and how many of a task's jobs start (see limits.py).
LIMIT_OPTIONS = ("rate_limit", "max_concurrency", "limit_key")


@dataclass(frozen=True)
class Task:
    """A registered handler and its default options. Built by ``@task``; immutable.

    Call ``enqueue()`` to add a job; call the task itself to run the handler directly (tests).
    Options left as None take the TEMPOTASK defaults when a job is enqueued.
    """

    func: Callable[..., Any]
    name: str
    queue: str | None = None
    attempts: int | None = None
    retry_delay: float | None = None
    backoff: str | None = None
    priority: int = 0
    description: str = ""
    cron: str | None = None
    timezone: str | None = None
    cron_data: Any = None
    cron_overlap: str = "allow"
    module: str = ""
    rate_limit: str | None = None
    max_concurrency: int | None = None
    limit_key: str | None = None
    timeout: float | None = None
    is_async: bool = field(default=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "is_async", asyncio.iscoroutinefunction(self.func))

    def __call__(self, job: Job, ctx: Any) -> Any:
        return self.func(job, ctx)

    def using(self, **changes: Any) -> Task:
        """A copy with other default options, e.g. ``send.using(queue="bulk").enqueue(...)``.

        The options changed are checked as ``@task`` checks them (enqueue() trusts a task's options).
        """
        checked = {key: value for key, value in changes.items() if key in validation.TASK_OPTIONS}
        validation.task_options(f"task {self.name!r}", **checked)
        limit_options = {key: changes.get(key, getattr(self, key)) for key in LIMIT_OPTIONS}
        validation.task_limits(f"task {self.name!r}", **limit_options)
        if changes.get("retry_delay") is not None:
            changes["retry_delay"] = validation.seconds(changes["retry_delay"], "retry_delay")
        if changes.get("timeout") is not None:
            changes["timeout"] = validation.timeout(changes["timeout"])
        if "priority" in changes and changes["priority"] is None:
            changes["priority"] = 0
        return dataclasses.replace(self, **changes)

    def enqueue(
        self,
        data: Any = None,
        *,
        job_id: str | None = None,
        queue: str | None = None,
        attempts: int | None = None,
        retry_delay: float | datetime.timedelta | None = None,
        backoff: str | None = None,
        priority: int | None = None,
        delay: float | datetime.timedelta | None = None,
        run_at: datetime.datetime | None = None,
        timeout: float | datetime.timedelta | None = None,
        on_commit: bool | None = None,
    ) -> str:
        """Add a job for this task and return its id.

        ``data`` must be JSON-serializable (datetime, Decimal and UUID become strings). With ``job_id``,
        nothing is added while a job with that id is waiting, delayed or processing. ``delay`` (seconds
        or timedelta) or ``run_at`` (aware datetime) make it ``delayed`` until due. Inside a database
        transaction the job is added when it commits unless ``on_commit=False``. ``timeout`` (seconds
        or timedelta) limits how long the handler may run (see docs/job-control.md).

        Example: ``send_notification.enqueue({"user_id": 7}, job_id="notify-7", delay=60)``
        """
        return producer.enqueue(
            self,
            data,
            job_id=job_id,
            queue=queue,
            attempts=attempts,
            retry_delay=retry_delay,
            backoff=backoff,
            priority=priority,
            delay=delay,
            run_at=run_at,
            timeout=timeout,
            on_commit=on_commit,
        )

    def enqueue_many(self, items: list[Any], **options: Any) -> list[str]:
        """Add one job per item of ``items`` (data values) in one round trip; returns their ids."""
        on_commit = options.pop("on_commit", None)
        return producer.enqueue_many([(self, data, options) for data in items], on_commit=on_commit)


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
    overlap: str = "allow",
    rate_limit: str | None = None,
    max_concurrency: int | None = None,
    limit_key: str | None = None,
    timeout: float | None = None,
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
    overlap: str = "allow",
    rate_limit: str | None = None,
    max_concurrency: int | None = None,
    limit_key: str | None = None,
    timeout: float | None = None,
) -> Task | Callable[[Callable[..., Any]], Task]:
    """Register ``func(job, ctx)`` as a task; use bare (``@task``) or with options.

    Parameters: ``name`` (default: the function's name), ``queue`` (default: DEFAULT_QUEUE),
    ``attempts`` (total tries), ``retry_delay`` (seconds), ``backoff`` ("fixed" or "exponential"),
    ``priority`` (higher runs first), ``description``, and for recurring jobs ``cron`` (a cron
    expression), ``timezone``, ``data`` (the data each cron job gets) and ``overlap`` ("allow",
    "skip" or "queue": what a tick does while the previous run is not finished). ``timeout``: seconds
    the handler may run before JobTimeout is raised in it (default: the queue's TIMEOUT, else
    DEFAULT_TIMEOUT). Limits, enforced across every worker by the Redis clock: ``rate_limit`` ("N/s",
    "N/m" or "N/h": at most N jobs started in any second, minute or hour), ``max_concurrency`` (at
    most N running at once) and ``limit_key`` (a field of the job's data: both limits then apply per
    value of that field). Invalid options raise ConfigurationError here, when the module is imported.

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
            timeout=timeout,
        )
        validation.task_limits(where, rate_limit=rate_limit, max_concurrency=max_concurrency, limit_key=limit_key)
        if cron is not None:
            validate_cron(cron, timezone, where=where)
        if data is not None:
            validation.json_data(data, where)
        if overlap not in ("allow", "skip", "queue"):
            raise ConfigurationError(f"{where}: overlap must be 'allow', 'skip' or 'queue', not {overlap!r}")
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
            cron_overlap=overlap,
            module=function.__module__,
            rate_limit=rate_limit,
            max_concurrency=max_concurrency,
            limit_key=limit_key,
            timeout=None if timeout is None else validation.timeout(timeout),
        )
        return registry.register(new_task)

    if func is not None:
        return decorate(func)
    return decorate
