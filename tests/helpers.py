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


def url_with_password(url: str, form: str, secret: str) -> str:
    """The test Redis URL with a password in it, in one of the ways redis-py reads one: "userinfo"
    (``redis://default:SECRET@``), "userinfo with @" (``default:SECRET@SECRET@``) or "query"
    (``?username=default&password=SECRET``). The test server's default user has no password, so
    it accepts any password given with the username."""
    if form == "query":
        return f"{url}{'&' if '?' in url else '?'}username=default&password={secret}"
    if not url.startswith("redis://"):
        pytest.skip("the test Redis is not reached through a redis:// URL")
    password = f"{secret}@{secret}" if form == "userinfo with @" else secret
    return url.replace("redis://", f"redis://default:{password}@", 1)
