"""Task definitions and the registry that maps names to them."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tempotask_django.exceptions import ConfigurationError, TaskNotRegistered

if TYPE_CHECKING:
    import datetime

    from tempotask_django.job import Job


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
    module: str = ""
    is_async: bool = field(default=False)

    def __post_init__(self) -> None:
        # Checked here, so copies made by using() are checked too, and enqueue() trusts them.
        from tempotask_django import validation

        validation.task_options(
            f"task {self.name!r}",
            queue=self.queue,
            attempts=self.attempts,
            retry_delay=self.retry_delay,
            backoff=self.backoff,
            priority=self.priority,
        )
        if self.retry_delay is not None:
            object.__setattr__(self, "retry_delay", validation.seconds(self.retry_delay, "retry_delay"))
        if self.priority is None:
            object.__setattr__(self, "priority", 0)
        object.__setattr__(self, "is_async", asyncio.iscoroutinefunction(self.func))

    def __call__(self, job: Job, ctx: Any) -> Any:
        return self.func(job, ctx)

    def using(self, **changes: Any) -> Task:
        """A copy with other default options, e.g. ``send.using(queue="bulk").enqueue(...)``."""
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
        on_commit: bool | None = None,
    ) -> str:
        """Add a job for this task and return its id.

        ``data`` must be JSON-serializable (datetime, Decimal and UUID become strings). With ``job_id``,
        nothing is added while a job with that id is waiting, delayed or processing. ``delay`` (seconds
        or timedelta) or ``run_at`` (aware datetime) make it ``delayed`` until due. Inside a database
        transaction the job is added when it commits unless ``on_commit=False``.

        Example: ``send_notification.enqueue({"user_id": 7}, job_id="notify-7", delay=60)``
        """
        from tempotask_django.producer import enqueue

        return enqueue(
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
            on_commit=on_commit,
        )

    def enqueue_many(self, items: list[Any], **options: Any) -> list[str]:
        """Add one job per item of ``items`` (data values) in one round trip; returns their ids."""
        from tempotask_django.producer import enqueue_many

        on_commit = options.pop("on_commit", None)
        return enqueue_many([(self, data, options) for data in items], on_commit=on_commit)


class TaskRegistry:
    """Name -> Task. Registering a second task under a taken name is a ConfigurationError."""

    def __init__(self) -> None:
        self._tasks: dict[str, Task] = {}
        self._lock = threading.Lock()

    def register(self, task: Task) -> Task:
        with self._lock:
            existing = self._tasks.get(task.name)
            if existing is not None and _origin(existing) != _origin(task):
                raise ConfigurationError(
                    f"Two tasks are named {task.name!r}: {_origin(existing)} and {_origin(task)}. "
                    "Give one of them another name with @task(name=...)."
                )
            self._tasks[task.name] = task
        return task

    def unregister(self, name: str) -> None:
        with self._lock:
            self._tasks.pop(name, None)

    def get(self, name: str) -> Task:
        try:
            return self._tasks[name]
        except KeyError:
            known = ", ".join(sorted(self._tasks)) or "none"
            raise TaskNotRegistered(
                f"No task named {name!r} is registered (known: {known}). Is its app in INSTALLED_APPS "
                "and the function decorated with @task in the app's tasks.py?"
            ) from None

    def find(self, name: str) -> Task | None:
        """The task registered as ``name``, or None."""
        return self._tasks.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._tasks

    def __iter__(self) -> Iterator[Task]:
        return iter(list(self._tasks.values()))

    def __len__(self) -> int:
        return len(self._tasks)


def _origin(task: Task) -> str:
    return f"{task.func.__module__}.{task.func.__qualname__}"


# The process-wide registry that @task fills.
registry = TaskRegistry()
