"""The bridge between Django's Tasks framework and tempotask.

``tempotask_django.backends.TempotaskBackend`` is the public entry point. The modules here:

- ``compat``: the one place that imports the Tasks API, from ``django.tasks`` (Django 6+) or from the
  ``django-tasks`` backport (Django 5.2).
- ``options``: the backend's ``OPTIONS`` (retry policy per task, enqueue on commit) and their checks.
- ``results``: what a job of a Django task carries, and how a stored job becomes a ``TaskResult``.
- ``handlers``: the internal tempotask tasks that run Django tasks in the worker, and the signals.

Nothing here imports the Tasks API at import time, so the app still loads where it is missing.
"""

from __future__ import annotations

import importlib.util


def framework_available() -> bool:
    """True when ``django.tasks`` or the ``django_tasks`` backport can be imported."""
    return any(importlib.util.find_spec(name) is not None for name in ("django.tasks", "django_tasks"))
