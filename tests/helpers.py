"""Small helpers shared by tests."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pytest
import redis

from tempotask_django.conf import get_settings
from tempotask_django.job import JobStatus
from tempotask_django.storage.inspect import QueueStats
from tempotask_django.storage.records import Finish, FinishOutcome
from tempotask_django.storage.store import RedisStore
from tempotask_django.testing import run_jobs
from tempotask_django.worker import Worker

T = TypeVar("T")
MONITOR_LINE = re.compile(r"^\S+ \[(\d+) ([^\]]*)\] (.*)$", re.DOTALL)
MONITOR_ARGUMENT = re.compile(r'"((?:[^"\\]|\\.)*)"')
# Sent by redis-py itself when it opens a connection or checks an idle one.
CONNECTION_CHORES = {"client", "hello", "select", "auth", "ping"}


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.02, message: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {message}")


def drain(queues=None, **options) -> Worker | None:
    """Run an in-process worker in burst mode until its queues are idle; returns it.

    In immediate mode the jobs ran when they were enqueued: this only checks that none is left due.
    """
    if get_settings().immediate:
        assert run_jobs(queues) == []
        return None
    worker = Worker(queues, burst=True, **options)
    worker.run()
    return worker


def finish(store: RedisStore, consumer: str, finishes: Sequence[Finish]) -> list[FinishOutcome]:
    """Record finished attempts as a worker does (without claiming more); each is refused if
    ``consumer`` lost the job."""
    outcomes, _ = store.finish_and_claim(consumer, finishes)
    return outcomes


def status_of(store: RedisStore, queue: str, job_id: str) -> JobStatus | None:
    """The status field of a job's record, None when there is no such job."""
    return JobStatus.parse(store.client.hget(store.keys(queue).job(job_id), "status"))


def is_paused(store: RedisStore, queue: str) -> bool:
    return bool(store.client.exists(store.keys(queue).paused))


def job_total(stats: QueueStats) -> int:
    """Jobs of the queue in any status."""
    return sum(getattr(stats, status) for status in JobStatus)


def minute_stats(store: RedisStore, queue: str, minutes: int) -> list[dict[str, int]]:
    """The dashboard's per-minute counts of one queue, oldest minute first."""
    return store.inspect.minute_totals([queue], minutes)


class CommandLog:
    """The commands Redis runs on the test database while an action runs, read with MONITOR.

    ``scripts=True`` includes the commands Lua scripts run; otherwise only what clients send.
    """

    def __init__(self, url: str, scripts: bool = True) -> None:
        self.client = redis.Redis.from_url(url, decode_responses=True)
        self.db = int(self.client.connection_pool.connection_kwargs.get("db") or 0)
        self.scripts = scripts

    def during(self, action: Callable[[], T]) -> tuple[T, list[list[str]]]:
        """What ``action()`` returned, and the commands Redis ran meanwhile (each as its arguments)."""
        marker = f"tempotask-test-end-{uuid.uuid4().hex}"
        commands: list[list[str]] = []
        with self.client.monitor() as monitor:
            result = action()
            self.client.echo(marker)  # MONITOR lists commands in order: everything before it is the action's
            while True:
                line = monitor.connection.read_response()
                found = MONITOR_LINE.match(line.decode() if isinstance(line, bytes) else line)
                assert found, line
                db, client, rest = found.groups()
                args = [arg.replace('\\"', '"') for arg in MONITOR_ARGUMENT.findall(rest)]
                if [arg.lower() for arg in args] == ["echo", marker]:
                    return result, commands
                if int(db) != self.db or not args or args[0].lower() in CONNECTION_CHORES:
                    continue
                if self.scripts or client != "lua":
                    commands.append(args)


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


def on_one_server(tempotask: dict[str, Any], url: str, **values: Any) -> dict[str, Any]:
    """``TEMPOTASK`` pointed at the one plain server at ``url``, whatever Redis mode the suite runs
    in (scripts/test-sentinel: there the sentinels, not REDIS_URL, would name the server)."""
    kept = {key: value for key, value in tempotask.items() if key not in ("SENTINELS", "SENTINEL_MASTER")}
    return {**kept, "REDIS_MODE": "standalone", "REDIS_URL": url, **values}
