"""One import point for Django's Tasks API.

Django 6 ships it as ``django.tasks``; on Django 5.2 the ``django-tasks`` package backports the same
API as ``django_tasks`` (``pip install "tempotask-django[tasks]"``). The two differ only in where
things live and in the names of two exceptions; everything else in tempotask imports from here.
``django.tasks`` wins when both are importable, since that is what task code on Django 6 uses.
"""

# ruff: noqa: F401 - this module only re-exports
from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

MISSING = (
    "tempotask's TempotaskBackend needs Django's Tasks framework: Django 6 or later (django.tasks), "
    'or the django-tasks backport on Django 5.2 (pip install "tempotask-django[tasks]").'
)

if TYPE_CHECKING or importlib.util.find_spec("django.tasks") is not None:
    from django.tasks import (
        DEFAULT_TASK_BACKEND_ALIAS,
        DEFAULT_TASK_QUEUE_NAME,
        Task,
        TaskContext,
        TaskResult,
        TaskResultStatus,
        default_task_backend,
        task,
        task_backends,
    )
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import TASK_MAX_PRIORITY, TASK_MIN_PRIORITY, TaskError
    from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist, TaskResultMismatch
    from django.tasks.signals import task_enqueued, task_finished, task_started
    from django.utils.json import normalize_json

    SOURCE = "django.tasks"
elif importlib.util.find_spec("django_tasks") is not None:
    # Importing the backport's checks module registers its system check (which calls our
    # backend's check()) even when "django_tasks" is not in INSTALLED_APPS.
    from django_tasks import (
        DEFAULT_TASK_BACKEND_ALIAS,
        DEFAULT_TASK_QUEUE_NAME,
        TaskContext,
        TaskResult,
        TaskResultStatus,
        checks,
        default_task_backend,
        task,
        task_backends,
    )
    from django_tasks.backends.base import BaseTaskBackend
    from django_tasks.base import TASK_MAX_PRIORITY, TASK_MIN_PRIORITY, Task, TaskError
    from django_tasks.exceptions import InvalidTaskError as InvalidTask
    from django_tasks.exceptions import TaskResultDoesNotExist, TaskResultMismatch
    from django_tasks.signals import task_enqueued, task_finished, task_started
    from django_tasks.utils import normalize_json

    SOURCE = "django_tasks"
else:
    raise ImportError(MISSING)
