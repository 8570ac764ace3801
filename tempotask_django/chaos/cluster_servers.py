"""A Redis Cluster of the caller's own (the test suite's, a chaos scenario's): 3 masters with 1
replica each, on free loopback ports.

Every node is a ``redis-server --cluster-enabled yes`` (from PATH, or the embedded binary) started
here and stopped by its pid. ``binary`` picks the server (default: from PATH, or the embedded one
when ``TEMPOTASK_EMBEDDED`` is set). The cluster is formed with CLUSTER MEET, ADDSLOTS and REPLICATE sent
by redis-py (what ``redis-cli --cluster create ... --cluster-replicas 1`` does), so no redis-cli
is needed. ``cluster-node-timeout`` is short so a failover takes a second or two.
"""

from __future__ import annotations

import contextlib
import random
import socket
from pathlib import Path

import redis

from tempotask_django.chaos.server_set import ServerSet
from tempotask_django.embedded import EmbeddedRedis

SLOTS = 16384
NODE_TIMEOUT_MS = 1000


def free_cluster_port() -> int:
    """A free loopback port whose cluster bus port (port + 10000) is free too (an OS-chosen port
    may be above 55535, whose bus port does not exist)."""
    for _ in range(200):
        port = random.randint(20000, 45000)
        try:
            with socket.socket() as first, socket.socket() as second:
                first.bind(("127.0.0.1", port))
                second.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


class ClusterSetup(ServerSet):
    """Start with ``start()`` (or as a context manager); ``stop()`` ends every server it started."""

    client_timeout = 5.0

    def __init__(self, directory: Path, masters: int = 3, binary: str | None = None) -> None:
        super().__init__(directory, binary)
        self.masters = masters

    @property
    def url(self) -> str:
        """A startup node's URL (the first master)."""
        return f"redis://127.0.0.1:{self.servers[0].port}/0"

    def _start(self) -> None:
        for index in range(self.masters * 2):
            folder = self.directory / f"node{index}"
            folder.mkdir()
            args = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(folder / "nodes.conf"),
                "--cluster-node-timeout",
                str(NODE_TIMEOUT_MS),
                "--appendonly",
                "no",
            ]
            server = EmbeddedRedis(binary=self.binary, port=free_cluster_port(), directory=str(folder), extra_args=args)
            self.servers.append(server.start())
        first = self.client_of(self.servers[0].port)
        for server in self.servers[1:]:
            first.execute_command("CLUSTER", "MEET", "127.0.0.1", server.port)
        per_master = SLOTS // self.masters
        for index, server in enumerate(self.servers[: self.masters]):
            end = SLOTS if index == self.masters - 1 else (index + 1) * per_master
            self.client_of(server.port).execute_command("CLUSTER", "ADDSLOTS", *range(index * per_master, end))
        self._wait(lambda: self._known_nodes() == len(self.servers), "every node to know the others")
        for master, replica in zip(self.servers[: self.masters], self.servers[self.masters :], strict=True):
            master_id = self.client_of(master.port).execute_command("CLUSTER", "MYID")
            self.client_of(replica.port).execute_command("CLUSTER", "REPLICATE", master_id)
        self._wait(self._ready, "the cluster to be ok with a synced replica per master")

    def wait_ready(self) -> None:
        """Wait until the cluster is ok, every node runs and each master has a synced replica."""
        self._wait(self._ready, "the cluster to be whole again", timeout=60)

    def _known_nodes(self) -> int:
        return min(len(self._nodes(server.port)) for server in self.servers)

    def _nodes(self, port: int) -> list[list[str]]:
        with contextlib.closing(self.client_of(port)) as client:
            text = client.execute_command("CLUSTER", "NODES")
        if isinstance(text, dict):  # redis-py may parse the reply
            return [[key, *str(value).split()] for key, value in text.items()]
        return [line.split() for line in str(text).splitlines() if line.strip()]

    def _ready(self) -> bool:
        for server in self.running():
            with contextlib.closing(self.client_of(server.port)) as client:
                try:
                    if client.cluster("info")["cluster_state"] != "ok":
                        return False
                    info = client.info("replication")
                except redis.RedisError:
                    return False
            if info["role"] == "slave" and info.get("master_link_status") != "up":
                return False
            every_node_runs = len(self.running()) == len(self.servers)
            if info["role"] == "master" and every_node_runs and int(info.get("connected_slaves", 0)) < 1:
                return False
        return len(self.master_ports()) == self.masters

    def running(self) -> list[EmbeddedRedis]:
        return [server for server in self.servers if server.process is not None]

    def master_ports(self) -> list[int]:
        """Ports of the nodes that are masters now (and run)."""
        ports = []
        for server in self.running():
            with contextlib.closing(self.client_of(server.port)) as client:
                try:
                    if client.info("replication")["role"] == "master":
                        ports.append(server.port)
                except redis.RedisError:
                    continue
        return ports

    def port_of_key(self, key: str) -> int:
        """The port of the master serving ``key``'s slot now."""
        with contextlib.closing(self.client_of(self.running()[0].port)) as client:
            slot = client.execute_command("CLUSTER", "KEYSLOT", key)
            for start, end, master, *_ in client.execute_command("CLUSTER", "SLOTS"):
                if int(start) <= int(slot) <= int(end):
                    return int(master[1])
        raise LookupError(key)

    def replica_of(self, master_port: int) -> int:
        with contextlib.closing(self.client_of(master_port)) as client:
            info = client.info("replication")
        return int(info["slave0"]["port"])

    def failover(self, master_port: int) -> int:
        """``CLUSTER FAILOVER`` on the replica of the master at ``master_port``; returns the new master's port
        once the cluster is ok again."""
        replica = self.replica_of(master_port)
        with contextlib.closing(self.client_of(replica)) as client:
            client.execute_command("CLUSTER", "FAILOVER")
        self._wait(lambda: self.role(replica) == "master" and self.role(master_port) == "slave", "the failover")
        self._wait(self._ready, "the cluster to be ok after the failover")
        return replica

    def kill_master(self, master_port: int) -> int:
        """SIGKILL the master at ``master_port``; returns its replica's port once that one is master and
        the cluster is ok."""
        replica = self.replica_of(master_port)
        self.server_on(master_port).kill()
        self._wait(lambda: self.role(replica) == "master", "the replica's promotion", timeout=30)
        self._wait(self._ready, "the cluster to be ok after the kill", timeout=30)
        return replica

    def flush(self) -> None:
        for port in self.master_ports():
            with contextlib.closing(self.client_of(port)) as client:
                client.flushall()
