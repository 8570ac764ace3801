"""A Redis Cluster of 3 masters with 1 replica each under load: a ``CLUSTER FAILOVER`` and a master
SIGKILLed while 2 worker processes serve 6 queues (one partitioned over the 3 masters) and 2 cron
beats fire every second, first with ``ENQUEUE_REPLICAS`` 0, then with 1 (see failover.py for the
phases and the figures).

The cluster is the scenario's own (cluster_servers.py: free loopback ports, ``cluster-node-timeout``
1 s, the lab's redis-server binary), stopped by pid at the end.
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path
from typing import Any

from tempotask_django import partitions
from tempotask_django.chaos.cluster_servers import ClusterSetup
from tempotask_django.chaos.failover import CRONS, Event, finish, run_phase, start_processes
from tempotask_django.chaos.lab import KEY_PREFIX, QUEUE, Lab
from tempotask_django.chaos.report import Result
from tempotask_django.chaos.scenarios import scenario
from tempotask_django.storage.keys import QueueKeys

# The six queues and their TEMPOTASK["QUEUES"] entries; "q2" is partitioned over the 3 masters
# (partitions.hash_tag puts partition i of 3 in the i-th third of the slots, so on the i-th master
# of the cluster's even slot split: slots 856, 9914 and 14459). The five others, by their slots:
# {chaos} 4772 and {q0} 3387 on the first master, {q1} 7450 and {q5} 7582 on the second, {q3} 15704
# on the third, so each master holds a partition of q2 and one or two more queues
# (tests/test_chaos.py checks it). The cron ticks go to the lab's queue, "chaos".
PARTITIONED = "q2"
QUEUE_CONFIGS: dict[str, dict[str, Any]] = {
    QUEUE: {},
    "q0": {},
    "q1": {},
    "q5": {},
    PARTITIONED: {"PARTITIONS": 3},
    "q3": {},
}
# Queue -> PARTITIONS for the partitioned queues.
PARTITION_COUNTS = {queue: config["PARTITIONS"] for queue, config in QUEUE_CONFIGS.items() if "PARTITIONS" in config}
# Per phase (ENQUEUE_REPLICAS 0, then 1): the key whose master a CLUSTER FAILOVER hands to its
# replica, then the key whose master is SIGKILLed. The first kill hits the cron ticks' queue, the
# second the beats' heartbeats (a global key, slot 15330).
PLAN = (
    ("{q1}", f"{{{QUEUE}}}"),
    (f"{{{QUEUE}}}", f"{KEY_PREFIX}:beats"),
)
STALLED_TIMEOUT = 3


@scenario(
    "cluster_failover",
    "Redis Cluster, 3 masters + 3 replicas: {jobs:,} jobs over 6 queues (one partitioned over the 3 "
    "masters), {processes} worker processes, {beats} beats (every-second cron); with ENQUEUE_REPLICAS 0 then 1, "
    "a CLUSTER FAILOVER and a master SIGKILL",
    short={"jobs": 3000, "rate": 150, "processes": 2, "concurrency": 4, "beats": 2, "max_ms": 5},
    long={"jobs": 10_000, "rate": 150, "processes": 2, "concurrency": 4, "beats": 2, "max_ms": 5},
)
def cluster_failover(lab: Lab, params: dict[str, Any], rng: random.Random) -> Result:
    result = Result()
    queues = list(QUEUE_CONFIGS)
    with ClusterSetup(
        Path(tempfile.mkdtemp(prefix="cluster-", dir=lab.workdir)).resolve(), binary=lab.server.binary
    ) as cluster:
        try:
            lab.configure(
                REDIS_MODE="cluster",
                REDIS_URL=cluster.url,
                QUEUES=QUEUE_CONFIGS,
                CRONS=CRONS,
                CRON_BEAT_HEARTBEAT=1,
                STALLED_TIMEOUT=STALLED_TIMEOUT,
                MAX_JOBS_PER_STATUS=3 * params["jobs"],
            )
            result.figure("masters holding the queues", len({cluster.port_of_key(key) for key in _keys(queues)}))
            result.must_equal(
                "masters holding the partitioned queue's partitions",
                len({cluster.port_of_key(key) for key in _keys([PARTITIONED])}),
                PARTITION_COUNTS[PARTITIONED],
            )
            workers, beats = start_processes(lab, queues, params)
            phases = []
            for replicas, (failover_key, kill_key) in enumerate(PLAN):
                events = [
                    lambda key=failover_key: _failover(cluster, queues, key),
                    lambda key=kill_key: _kill(cluster, queues, key),
                ]
                phases.append(run_phase(lab, replicas, queues, params, rng, events, lambda e: _heal(cluster, e)))
            finish(lab, result, phases, workers, beats)
        finally:
            for command in lab.commands:
                command.kill()
    return result


def _physical(queues: list[str]) -> list[str]:
    """The physical queues of ``queues``: each partition of a partitioned queue, else the queue."""
    return [
        partitions.name(queue, i, PARTITION_COUNTS[queue]) if queue in PARTITION_COUNTS else queue
        for queue in queues
        for i in range(PARTITION_COUNTS.get(queue, 1))
    ]


def _keys(queues: list[str]) -> dict[str, str]:
    """A key of each physical queue of ``queues`` (its key base, with the hash tag the storage gives
    it: a partition's is not its name), by key."""
    return {QueueKeys(KEY_PREFIX, physical).base + ":waiting": physical for physical in _physical(queues)}


def _on(cluster: ClusterSetup, queues: list[str], port: int) -> list[str]:
    """The physical queues of ``queues`` the master on ``port`` holds: a partitioned queue is hit
    through the partitions it holds (its other partitions run on)."""
    return [physical for key, physical in _keys(queues).items() if cluster.port_of_key(key) == port]


def _failover(cluster: ClusterSetup, queues: list[str], key: str) -> Event:
    port = cluster.port_of_key(key)
    hit = _on(cluster, queues, port)
    started = time.time()
    cluster.failover(port)  # returns once the replica is master and the cluster ok
    return Event("CLUSTER FAILOVER", hit, started, time.time(), port=port, partitions=PARTITION_COUNTS)


def _kill(cluster: ClusterSetup, queues: list[str], key: str) -> Event:
    port = cluster.port_of_key(key)
    hit, replica = _on(cluster, queues, port), cluster.replica_of(port)
    started = time.time()
    cluster.server_on(port).kill()
    deadline = time.monotonic() + 30
    while cluster.role(replica) != "master":
        if time.monotonic() > deadline:
            raise TimeoutError(f"the replica on port {replica} was not promoted")
        time.sleep(0.02)
    return Event("SIGKILL of a master", hit, started, time.time(), port=port, partitions=PARTITION_COUNTS)


def _heal(cluster: ClusterSetup, event: Event) -> None:
    """A killed node comes back (as a replica of the node promoted in its place)."""
    if cluster.server_on(event.port).process is None:
        cluster.server_on(event.port).start()
    cluster.wait_ready()
