"""A backend for Django's Tasks framework that runs tasks on tempotask.

::

    TASKS = {
        "default": {
            "BACKEND": "tempotask_django.backends.TempotaskBackend",
            "QUEUES": ["default", "emails"],
            "OPTIONS": {"ATTEMPTS": 3, "RETRY_DELAY": 10, "BACKOFF": "exponential"},
        }
    }

Task code stays pure Django (``from django.tasks import task``); ``manage.py runworkers`` runs these
tasks beside tempotask's own. See ``djtasks/`` for how the two map onto each other.
"""

from __future__ import annotations

import datetime
import functools
import json
import uuid
from inspect import iscoroutinefunction
from typing import Any

from django.apps import apps
from django.core import checks
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from tempotask_django import signals
from tempotask_django.api import all_queues
from tempotask_django.conf import get_settings
from tempotask_django.djtasks import options as backend_options
from tempotask_django.djtasks.compat import (
    BaseTaskBackend,
    InvalidTask,
    Task,
    TaskResult,
    TaskResultDoesNotExist,
    TaskResultStatus,
    task_enqueued,
)
from tempotask_django.djtasks.handlers import ASYNC_TASK, SYNC_TASK
from tempotask_django.djtasks.results import TASK_NAMES, TaskCall, local_datetime, to_task_result
from tempotask_django.job import Job, ms_to_datetime
from tempotask_django.producer import build_spec, submit
from tempotask_django.storage.connection import get_default_store
from tempotask_django.storage.records import JobSpec
from tempotask_django.validation import JOB_ID_PATTERN, NAME_PATTERN


class TempotaskBackend(BaseTaskBackend):
    """Runs Django tasks as tempotask jobs: same queues, workers, retries, recovery and admin.

    ``QUEUES`` are tempotask queues (run ``manage.py runworkers --queues ...`` for them). ``OPTIONS``:
    ``ATTEMPTS``, ``RETRY_DELAY``, ``BACKOFF`` (the retry policy of this backend's tasks; default:
    TEMPOTASK's), ``PER_TASK`` (the same keys per task module path) and ``ENQUEUE_ON_COMMIT``
    (default False: enqueue at once, as Django's own backends do).
    """

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def validate_task(self, task: Any) -> None:
        super().validate_task(task)
        if not isinstance(task.queue_name, str) or not NAME_PATTERN.match(task.queue_name):
            raise InvalidTask(
                f"Queue {task.queue_name!r} is not a valid tempotask queue name "
                "(letters, digits, '_', '.', '-'; 1-100)."
            )

    @functools.cached_property
    def _config(self) -> backend_options.BackendOptions:
        # Parsed once per backend instance: Django builds new instances when TASKS changes.
        return backend_options.parse(self.options, self.alias)

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        """Add a job for ``task(*args, **kwargs)`` and return its READY TaskResult."""
        self.validate_task(task)
        _check_importable(task)
        settings = get_settings()
        config = self._config
        # Django's own checks of args and kwargs, with its error messages.
        task_result: Any = TaskResult(
            task=task,
            id=uuid.uuid4().hex,
            status=TaskResultStatus.READY,
            enqueued_at=None,
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=args,
            kwargs=kwargs,
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
        # As JSON stores them (dict keys become strings), so the worker and get_result() see the same.
        stored_args, stored_kwargs = json.loads(json.dumps([task_result.args, task_result.kwargs]))
        object.__setattr__(task_result, "args", stored_args)
        object.__setattr__(task_result, "kwargs", stored_kwargs)
        call = TaskCall(task.module_path, stored_args, stored_kwargs, self.alias, _aware(task.run_after))
        retry = config.retry_for(task.module_path)
        spec = build_spec(
            ASYNC_TASK if iscoroutinefunction(task.func) else SYNC_TASK,
            call.to_data(),
            settings=settings,
            job_id=task_result.id,
            queue=task.queue_name,
            priority=int(task.priority),
            run_at=call.run_after,
            attempts=retry.attempts,
            retry_delay=retry.retry_delay,
            backoff=retry.backoff,
        )
        if config.enqueue_on_commit and transaction.get_connection().in_atomic_block:
            transaction.on_commit(lambda: self._submit(spec, task_result))
        else:
            self._submit(spec, task_result)
        return task_result

    def _submit(self, spec: JobSpec, task_result: Any) -> None:
        submit([spec])  # sets spec.enqueued_at_ms: no second round trip to read it
        object.__setattr__(task_result, "enqueued_at", local_datetime(ms_to_datetime(spec.enqueued_at_ms or None)))
        signals.send(task_enqueued, sender=type(self), task_result=task_result)

    def get_result(self, result_id: str) -> Any:
        """The TaskResult of ``result_id`` from any process; TaskResultDoesNotExist when unknown."""
        job = self._find(result_id)
        if job is None or job.name not in TASK_NAMES:
            raise TaskResultDoesNotExist(result_id)
        return to_task_result(job)

    def _find(self, result_id: Any) -> Job | None:
        if not isinstance(result_id, str) or not JOB_ID_PATTERN.match(result_id):
            return None
        store = get_default_store()
        queue = store.inspect.find_queue(result_id, sorted(self.queues)) if self.queues else None
        if queue is None:  # QUEUES may have changed since the task was enqueued
            queue = store.inspect.find_queue(result_id, all_queues())
        return store.inspect.get_job(queue, result_id) if queue else None

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        """Problems of this backend's configuration, for ``manage.py check``."""
        messages = list(super().check(**kwargs))
        where = f"TASKS[{self.alias!r}]"
        for check_id, message, hint in backend_options.validate(self.options, self.alias):
            messages.append(checks.Error(message, hint=hint, id=check_id))
        for queue in sorted(self.queues, key=str):
            if not isinstance(queue, str) or not NAME_PATTERN.match(queue):
                msg = f"{where}['QUEUES'] has {queue!r}, which is not a valid tempotask queue name."
                messages.append(checks.Error(msg, hint="Letters, digits, '_', '.', '-'; 1-100.", id="tempotask.E104"))
        if not apps.is_installed("tempotask_django"):
            messages.append(
                checks.Error(
                    f"{where} uses TempotaskBackend but 'tempotask_django' is not in INSTALLED_APPS.",
                    hint="Add it: its workers (manage.py runworkers) run the tasks.",
                    id="tempotask.E105",
                )
            )
        options = self.options if isinstance(self.options, dict) else {}
        per_task = options.get("PER_TASK")
        for path in per_task if isinstance(per_task, dict) else ():
            messages += _unknown_task_warnings(path, where)
        return messages


def _check_importable(task: Any) -> None:
    """The worker finds a task by its module path: refuse one it could not find."""
    try:
        found = import_string(task.module_path)
    except ImportError:
        found = None
    if not isinstance(found, Task) or found.func is not task.func:
        raise InvalidTask(
            f"Task {task.module_path!r} cannot be found at its module path, so a worker could not run it. "
            "Define tasks with @task at the top level of a module, and keep the decorated name."
        )


def _aware(value: datetime.datetime | None) -> datetime.datetime | None:
    if value is None or timezone.is_aware(value):
        return value
    return timezone.make_aware(value)  # USE_TZ = False: naive means the current time zone


def _unknown_task_warnings(path: Any, where: str) -> list[checks.CheckMessage]:
    try:
        found = import_string(path) if isinstance(path, str) else None
    except ImportError:
        found = None
    if isinstance(found, Task):
        return []
    return [
        checks.Warning(
            f"{where}['OPTIONS']['PER_TASK'] names {path!r}, which is not a task.",
            hint="Keys are tasks' module paths (Task.module_path), e.g. 'myapp.tasks.send_email'.",
            id="tempotask.W101",
        )
    ]
