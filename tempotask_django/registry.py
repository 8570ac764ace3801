"""The registry that maps task names to tasks (``@task`` fills it; see decorators.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from tempotask_django.exceptions import ConfigurationError, TaskNotRegistered

if TYPE_CHECKING:
    from tempotask_django.decorators import Task


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
