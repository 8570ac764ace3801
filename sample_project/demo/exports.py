"""A task written for Django's Tasks framework alone: no tempotask import.

settings.TASKS points Django's framework at tempotask, so ``manage.py runworkers`` runs it, retries
it (OPTIONS in settings) and the admin shows it, like the tempotask tasks in tasks.py.
"""

import random

try:
    from django.tasks import TaskContext, task  # Django 6
except ImportError:  # Django 5.2: the same API from the django-tasks backport
    from django_tasks import TaskContext, task


@task(takes_context=True, priority=5)
def export_orders(context: TaskContext, month: str) -> dict:
    """Export a month of orders; the storage service is flaky on a first attempt."""
    if context.attempt == 1 and random.random() < 0.5:
        raise TimeoutError("storage service did not answer")
    return {"month": month, "rows": random.randint(100, 1000), "attempt": context.attempt}
