"""The world one scenario runs in: its own queue Redis, the shared ledger, and ``manage.py`` processes.

``Lab`` starts a fresh redis-server for the scenario (optionally with an append-only file, so it can
be killed and restarted with its data), points the driver's TEMPOTASK at it, and starts commands
(``runworkers``, and any other management command such as a cron beat) as subprocesses in their own
process group, so that nothing outlives the scenario.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from django.test.utils import override_settings

from tempotask_django.chaos.ledger import Ledger
from tempotask_django.embedded import EmbeddedRedis
from tempotask_django.storage.connection import get_default_store, reset_default_store
from tempotask_django.storage.keys import CONSUMER_GROUP
from tempotask_django.storage.store import RedisStore

SETTINGS_MODULE = "tempotask_django.chaos.settings"
QUEUE = "chaos"
KEY_PREFIX = "chaos"
# The directory holding the tempotask_django package, so subprocesses import this very checkout.
PROJECT_ROOT = str(Path(__file__).resolve().parent.parent.parent)


@dataclass(frozen=True)
class LogLine:
    t: float
    level: str
    pid: int
    message: str


class Command:
    """One ``python -m django <command>`` subprocess (with its forked children) and its log file."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self.started = time.time()
        with open(log_path, "w") as log:  # a file, not a pipe: a full pipe would block the process
            self.process = subprocess.Popen(
                [sys.executable, "-m", "django", *argv],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: killed as a whole at the end
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def children(self) -> list[int]:
        """Pids of the processes this command forked (the worker processes of a supervisor)."""
        path = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        try:
            return [int(pid) for pid in path.read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            return []

    def signal(self, signum: int, pid: int | None = None) -> None:
        """Send ``signum`` to the command, or to one of its children."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid or self.pid, signum)

    def stop(self, timeout: float = 60.0) -> tuple[int | None, float]:
        """SIGTERM, then wait. Returns (exit code or None when it did not exit in time, seconds)."""
        started = time.monotonic()
        self.signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
        return code, time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL the whole process group (the command and every child it forked)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)

    def log_lines(self) -> list[LogLine]:
        """The lines of the log written in the chaos settings' format; other lines are skipped."""
        lines = []
        for raw in self.log_path.read_text(errors="replace").splitlines():
            parts = raw.split(" ", 3)
            if len(parts) == 4 and parts[2].startswith("[") and parts[2].endswith("]"):
                try:
                    lines.append(LogLine(float(parts[0]), parts[1], int(parts[2][1:-1]), parts[3]))
                except ValueError:
                    continue
        return lines

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class Lab:
    """A scenario's queue Redis, ledger and processes. Use as a context manager."""

    def __init__(
        self,
        name: str,
        workdir: Path,
        ledger_url: str,
        *,
        redis_binary: str | None = None,
        appendonly: bool = False,
        redis_args: list[str] | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.ledger_url = ledger_url
        self.ledger = Ledger(ledger_url)
        self.server = EmbeddedRedis(binary=redis_binary, appendonly=appendonly, extra_args=redis_args)
        self.overrides = dict(overrides or {})
        self.commands: list[Command] = []
        self._settings: override_settings | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> Lab:
        self.server.start()
        self.ledger.clear()
        self.configure()
        return self

    def __exit__(self, *exc: object) -> None:
        for command in self.commands:
            command.kill()
        reset_default_store()
        if self._settings is not None:
            self._settings.disable()
        self.server.stop()
        self.ledger.close()

    def configure(self, **overrides: Any) -> None:
        """Merge ``overrides`` into TEMPOTASK, for the driver and for commands started after this."""
        self.overrides.update(overrides)
        if self._settings is not None:
            self._settings.disable()
        self._settings = override_settings(TEMPOTASK=self.tempotask_settings())
        self._settings.enable()
        reset_default_store()

    def tempotask_settings(self) -> dict[str, Any]:
        settings = {
            "REDIS_URL": self.server.url,
            "KEY_PREFIX": KEY_PREFIX,
            "DEFAULT_QUEUE": QUEUE,
            "CONTEXT": "tempotask_django.chaos.handlers.context",
            **self.overrides,
        }
        # Short leases need a short grace (check tempotask.W001); a scenario may still set its own.
        stalled = settings.get("STALLED_TIMEOUT")
        if stalled is not None and "TIMEOUT_GRACE" not in settings:
            settings["TIMEOUT_GRACE"] = min(5, stalled / 3)
        return settings

    # -- processes ----------------------------------------------------------------------------
    def start(self, command: str, *args: str, log_level: str = "WARNING") -> Command:
        """Start ``manage.py <command> <args>`` against this lab's Redis and ledger."""
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
            "PYTHONPATH": os.pathsep.join(filter(None, [PROJECT_ROOT, os.environ.get("PYTHONPATH")])),
            "CHAOS_REDIS_URL": self.server.url,
            "CHAOS_LEDGER_URL": self.ledger_url,
            "CHAOS_OVERRIDES": json.dumps(self.overrides),
            "CHAOS_LOG_LEVEL": log_level,
        }
        name = f"{command}-{len(self.commands)}"
        process = Command(name, [command, *args], env, self.workdir / f"{name}.log")
        self.commands.append(process)
        return process

    def workers(self, processes: int = 2, concurrency: int = 4, *extra: str, log_level: str = "WARNING") -> Command:
        """``runworkers`` on the chaos queue: ``processes`` x ``concurrency``."""
        return self.start(
            "runworkers",
            "--queues",
            QUEUE,
            "--processes",
            str(processes),
            "--concurrency",
            str(concurrency),
            *extra,
            log_level=log_level,
        )

    # -- the queue ----------------------------------------------------------------------------
    @property
    def store(self) -> RedisStore:
        return get_default_store()

    @property
    def client(self) -> redis.Redis:
        return self.store.client

    def raw_client(self) -> redis.Redis:
        """A client that sends and returns bytes, for writing what a foreign program might write."""
        return redis.Redis.from_url(self.server.url)

    def redis_version(self) -> str:
        return str(self.client.info("server")["redis_version"])

    def pending(self) -> int:
        try:
            return int(self.client.xpending(self.store.keys(QUEUE).stream, CONSUMER_GROUP)["pending"])
        except redis.ResponseError:  # no stream or group yet
            return 0

    def unfinished(self) -> int:
        """Jobs waiting, delayed or processing, or leased (pending stream entries)."""
        stats = self.store.inspect.queue_stats(QUEUE)
        return stats.waiting + stats.delayed + stats.processing + self.pending()

    def wait_drained(self, timeout: float, poll: float = 0.1) -> bool:
        """Wait until nothing is left to run; False on timeout. Redis errors count as not drained."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.unfinished() == 0:
                    return True
            except redis.ConnectionError:
                pass
            time.sleep(poll)
        return False

    def wait_ledger(self, size: int, timeout: float, poll: float = 0.02) -> bool:
        """Wait until the ledger holds at least ``size`` lines; False on timeout."""
        deadline = time.monotonic() + timeout
        while self.ledger.size() < size:
            if time.monotonic() > deadline:
                return False
            time.sleep(poll)
        return True

    def statuses(self, job_ids: Iterable[str]) -> dict[str, str | None]:
        """The status of each job (None when its record does not exist)."""
        ids = list(job_ids)
        keys = self.store.keys(QUEUE)
        result: dict[str, str | None] = {}
        for start in range(0, len(ids), 5000):
            chunk = ids[start : start + 5000]
            pipe = self.client.pipeline(transaction=False)
            for job_id in chunk:
                pipe.hget(keys.job(job_id), "status")
            result.update(zip(chunk, pipe.execute(), strict=True))
        return result

    def finished_counts(self) -> dict[str, int]:
        """Completed, failed and retried attempts over the queue's life, from the per-minute counters."""
        totals = {"completed": 0, "failed": 0, "retried": 0}
        for field, value in self.client.hgetall(self.store.keys(QUEUE).minutes).items():
            kind = str(field).rpartition(":")[2]
            if kind in totals:
                totals[kind] += int(value)
        return totals
