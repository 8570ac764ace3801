"""Django Tasks framework tasks of the test suite (run through TempotaskBackend).

They import the framework through our compat module only so that one file serves Django 5.2 (the
backport) and 6.x; tests/djtasks_project shows a project importing it the plain way.
"""

import asyncio
import os
import time

from django.conf import settings

from tempotask_django.djtasks.compat import TaskContext, task
from tests.testapp.context import Ledger


def _ledger() -> Ledger:
    return Ledger(settings.TEMPOTASK["REDIS_URL"])


@task()
def noop(*args, **kwargs):
    return None


@task()
async def noop_async(*args, **kwargs):
    return None


@task()
def calculate_meaning_of_life():
    return 42


@task()
async def add_async(a, b):
    await asyncio.sleep(0.01)
    return a + b


@task()
def echo(*args, **kwargs):
    return {"args": list(args), "kwargs": kwargs}


@task()
def failing_value_error():
    raise ValueError("This task failed due to ValueError")


@task()
def failing_system_exit():
    raise SystemExit("This task failed due to SystemExit")


@task()
def complex_return_value():
    return lambda: True  # neither JSON nor anything else a result can hold


@task(takes_context=True)
def get_task_id(context: TaskContext):
    return context.task_result.id


@task(takes_context=True)
def flaky(context: TaskContext, succeed_on: int):
    """Fails until attempt ``succeed_on``; PER_TASK in tests/settings.py gives it 3 attempts."""
    _ledger().record(
        "attempt", context.task_result.id, attempt=context.attempt, worker_ids=list(context.task_result.worker_ids)
    )
    if context.attempt < succeed_on:
        raise RuntimeError(f"attempt {context.attempt} fails")
    return context.attempt


@task(takes_context=True)
def record(context: TaskContext, label):
    _ledger().record("ran", context.task_result.id, label=label, priority=context.task_result.task.priority)
    return label


@task(takes_context=True)
def sleep_then_return(context: TaskContext, seconds: float):
    _ledger().record("start", context.task_result.id, attempt=context.attempt)
    time.sleep(seconds)
    _ledger().record("end", context.task_result.id, attempt=context.attempt)
    return os.getpid()


def _not_at_its_path():
    return None


# The Task is bound to another name than its function's: the worker could not find it by module path.
renamed = task()(_not_at_its_path)
