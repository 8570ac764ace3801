"""Fixtures: a real Redis on a dedicated database, and worker subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import hypothesis  # noqa: F401 - imported early: a late first import trips a CPython 3.11.7 AST bug
import pytest
import redis
from django.conf import settings

from tempotask_django.conf import mask_url
from tempotask_django.embedded import redis_reachable
from tempotask_django.storage.connection import get_default_store, reset_default_store
from tempotask_django.testing import immediate_mode
from tests.testapp.context import Ledger

ROOT = Path(__file__).resolve().parent.parent
OUR_KEY_PREFIXES = ("tempotask-test:", "tests:")


def _test_url() -> str:
    return settings.TEMPOTASK["REDIS_URL"]


@pytest.fixture(scope="session")
def redis_server() -> redis.Redis:
    """The test database; refuses to touch a database holding keys that are not ours."""
    url = _test_url()
    if not redis_reachable(url):
        message = f"no Redis answers at {mask_url(url)} (run the suite through ./run-tests)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    if os.environ.get("TEMPOTASK_TEST_REDIS_MODE") == "cluster":  # scripts/test-cluster
        from redis.cluster import RedisCluster

        client = RedisCluster.from_url(url, decode_responses=True)
    else:
        client = redis.Redis.from_url(url, decode_responses=True)
    foreign = [key for key in client.scan_iter(count=1000) if not key.startswith(OUR_KEY_PREFIXES)]
    if foreign:
        pytest.fail(f"refusing to use {mask_url(url)}: it holds keys the tests did not write, e.g. {foreign[:3]}")
    return client


@pytest.fixture
def redis_client(redis_server: redis.Redis):
    """A clean test database, flushed before and after the test."""
    redis_server.flushdb()
    reset_default_store()
    yield redis_server
    reset_default_store()
    redis_server.flushdb()


@pytest.fixture(params=["redis", "immediate"])
def both_modes(request, redis_client):
    """Runs the test in Redis mode, then in immediate mode (TEMPOTASK["MODE"]): there the jobs live
    in the in-memory Redis and run when enqueued (the ledger stays on the test database). Ask for
    it before ``store``, so the store is the mode's."""
    if request.param == "redis":
        yield request.param
        return
    with immediate_mode():
        yield request.param


@pytest.fixture
def store(redis_client):
    return get_default_store()


@pytest.fixture
def ledger(redis_client) -> Ledger:
    return Ledger(_test_url())


class WorkerProcesses:
    """Starts ``manage.py runworkers`` (or another command: ``runcron``) subprocesses and cleans them up."""

    def __init__(self, log_dir: Path) -> None:
        self.processes: list[subprocess.Popen[str]] = []
        self.log_dir = log_dir

    def start(
        self,
        *args: str,
        overrides: dict | None = None,
        log_level: str = "INFO",
        settings_module: str = "tests.settings",
        command: str = "runworkers",
        env: dict | None = None,
        new_session: bool = False,
    ) -> subprocess.Popen[str]:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": settings_module,
            "PYTHONPATH": str(ROOT),
            "TEMPOTASK_TEST_REDIS_URL": _test_url(),
            "TEMPOTASK_TEST_OVERRIDES": json.dumps(overrides or {}),
            "TEMPOTASK_TEST_LOG_LEVEL": log_level,
            **(env or {}),
        }
        log_path = self.log_dir / f"{command}-{len(self.processes)}.log"
        with open(log_path, "w") as log:  # a file, not a pipe: a full pipe would block the worker
            process = subprocess.Popen(
                [sys.executable, "-m", "django", command, *args],
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=new_session,  # its own process group, as a terminal's foreground job
            )
        process.log_path = log_path  # type: ignore[attr-defined]
        self.processes.append(process)
        return process

    @staticmethod
    def output(process: subprocess.Popen[str]) -> str:
        return process.log_path.read_text()  # type: ignore[attr-defined]

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture
def workers(redis_client, tmp_path):
    processes = WorkerProcesses(tmp_path)
    yield processes
    processes.stop_all()
