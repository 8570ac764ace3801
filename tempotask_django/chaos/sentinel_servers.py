"""A Sentinel setup of the caller's own (the test suite's, a chaos scenario's): 1 master, 1 replica,
3 sentinels on free loopback ports.

Every process is a ``redis-server`` (from PATH, or the embedded binary) started here and stopped
by its pid. Timeouts are short so a failover takes about two seconds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, cast

import redis

from tempotask_django.chaos.server_set import ServerSet
from tempotask_django.embedded import EmbeddedRedis, free_port

MASTER_NAME = "tt-master"


class SentinelSetup(ServerSet):
    """Start with ``start()`` (or as a context manager); ``stop()`` ends every process it started."""

    def __init__(self, directory: Path, binary: str | None = None) -> None:
        super().__init__(directory, binary)
        self.sentinel_ports: list[int] = []
        self.sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def sentinel_addresses(self) -> list[str]:
        return [f"127.0.0.1:{port}" for port in self.sentinel_ports]

    def _start(self) -> None:
        master = self._server("master", [])
        self._server("replica", ["--replicaof", "127.0.0.1", str(master.port)])
        for index in range(3):
            port = free_port()
            folder = self.directory / f"sentinel{index}"
            folder.mkdir()
            config = folder / "sentinel.conf"
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndaemonize no\ndir {folder}\nloglevel warning\n"
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master.port} 2\n"
                f"sentinel down-after-milliseconds {MASTER_NAME} 1000\n"
                f"sentinel failover-timeout {MASTER_NAME} 2000\n"
                f"sentinel parallel-syncs {MASTER_NAME} 1\n"
            )
            log = open(folder / "sentinel.log", "ab")  # noqa: SIM115 - lives as long as the process
            process = subprocess.Popen([self.binary, str(config), "--sentinel"], stdout=log, stderr=subprocess.STDOUT)
            self.sentinels.append(process)
            self.sentinel_ports.append(port)
        self._wait(self._ready, "the sentinels to know the replica and each other")

    def _server(self, name: str, args: list[str]) -> EmbeddedRedis:
        folder = self.directory / name
        folder.mkdir()
        server = EmbeddedRedis(binary=self.binary, directory=str(folder), extra_args=args).start()
        self.servers.append(server)
        return server

    def sentinel(self, index: int = 0) -> redis.Redis:
        return redis.Redis(port=self.sentinel_ports[index], decode_responses=True, socket_timeout=2)

    def wait_ready(self, timeout: float = 60) -> None:
        """Wait until every sentinel knows a replica whose link to the master is up, and the others."""
        self._wait(self._ready, "the sentinels to know a synced replica again", timeout)

    def _ready(self) -> bool:
        for index in range(3):
            with contextlib.closing(self.sentinel(index)) as client:
                try:
                    replicas = cast(list[dict[str, Any]], client.sentinel_slaves(MASTER_NAME))
                    others = cast(list[dict[str, Any]], client.sentinel_sentinels(MASTER_NAME))
                except redis.RedisError:
                    return False
                if not any("s_down" not in r["flags"] and r["master-link-status"] == "ok" for r in replicas):
                    return False
                if len(others) < 2:
                    return False
        return True

    def master_port(self) -> int:
        """The master's port as the first sentinel reports it now."""
        with contextlib.closing(self.sentinel()) as client:
            _, port = cast(tuple[str, int], client.sentinel_get_master_addr_by_name(MASTER_NAME))
        return int(port)

    def failover(self) -> int:
        """``SENTINEL FAILOVER``; returns the new master's port once every sentinel reports it."""
        old = self.master_port()
        deadline = time.monotonic() + 20
        while True:  # NOGOODSLAVE until the sentinels have fresh INFO of the replica
            try:
                with contextlib.closing(self.sentinel()) as client:
                    client.execute_command("SENTINEL", "FAILOVER", MASTER_NAME)
                break
            except redis.ResponseError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        return self.wait_for_new_master(old)

    def wait_for_new_master(self, old: int, timeout: float = 30) -> int:
        def switched() -> bool:
            ports = set()
            for index in range(3):
                with contextlib.closing(self.sentinel(index)) as client:
                    address = cast(tuple[str, int], client.sentinel_get_master_addr_by_name(MASTER_NAME))
                    ports.add(int(address[1]))
            return ports != {old} and len(ports) == 1

        self._wait(switched, "every sentinel to report the new master", timeout)
        return self.master_port()

    def set_all(self, name: str, value: str) -> None:
        """CONFIG SET on every data server that runs."""
        for server in self.servers:
            if server.process is not None:
                with contextlib.closing(self.client_of(server.port)) as client:
                    client.config_set(name, value)

    def stop(self) -> None:
        for process in self.sentinels:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.kill(process.pid, signal.SIGKILL)
                    process.wait()
        self.sentinels = []
        super().stop()
