"""Small helpers shared by tests."""

from __future__ import annotations

import time

import pytest

from tempotask_django.worker import Worker


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.02, message: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {message}")


def drain(queues=None, **options) -> Worker:
    """Run an in-process worker in burst mode until its queues are idle; returns it."""
    worker = Worker(queues, burst=True, **options)
    worker.run()
    return worker
