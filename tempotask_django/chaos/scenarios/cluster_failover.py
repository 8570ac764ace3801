"""A Redis Cluster of 3 masters with 1 replica each under load: a ``CLUSTER FAILOVER`` and a master
SIGKILLed while 2 worker processes serve 6 queues and 2 cron beats fire every second, first with
``ENQUEUE_REPLICAS`` 0, then with 1 (see failover.py for the phases and the figures).

The cluster is the scenario's own (cluster_servers.py: free loopback ports, ``cluster-node-timeout``
1 s, the lab's redis-server binary), stopped by pid at the end.
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path
from typing import Any

from tempotask_django.chaos.cluster_servers import ClusterSetup
from tempotask_django.chaos.failover import CRONS, Event, finish, run_phase, start_processes
from tempotask_django.chaos.lab import KEY_PREFIX, QUEUE, Lab
from tempotask_django.chaos.report import Result
from tempotask_django.chaos.scenarios import scenario

# The six queues and their TEMPOTASK["QUEUES"] entries. Two queues per master of the cluster's even
# slot split: {chaos} 4772 and {q0} 3387 on the first, {q1} 7450 and {q5} 7582 on the second, {q2}
# 11641 and {q3} 15704 on the third (tests/test_chaos.py checks it). The cron ticks go to the lab's
# queue, "chaos". This is where one queue becomes partitioned over the 3 masters, e.g.
# "q2": {"PARTITIONS": 3}, once partitioned queues exist.
QUEUE_CONFIGS: dict[str, dict[str, Any]] = {QUEUE: {}, "q0": {}, "q1": {}, "q5": {}, "q2": {}, "q3": {}}
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
    "Redis Cluster, 3 masters + 3 replicas: {jobs:,} jobs over 6 queues, {processes} worker processes, "
    "{beats} beats (every-second cron); with ENQUEUE_REPLICAS 0 then 1, a CLUSTER FAILOVER and a master SIGKILL",
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
            result.figure("masters holding the queues", len({cluster.port_of_key(f"{{{q}}}") for q in queues}))
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


def _on(cluster: ClusterSetup, queues: list[str], port: int) -> list[str]:
    return [queue for queue in queues if cluster.port_of_key(f"{{{queue}}}") == port]


def _failover(cluster: ClusterSetup, queues: list[str], key: str) -> Event:
    port = cluster.port_of_key(key)
    hit = _on(cluster, queues, port)
    started = time.time()
    cluster.failover(port)  # returns once the replica is master and the cluster ok
    return Event("CLUSTER FAILOVER", hit, started, time.time(), port=port)


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
    return Event("SIGKILL of a master", hit, started, time.time(), port=port)


def _heal(cluster: ClusterSetup, event: Event) -> None:
    """A killed node comes back (as a replica of the node promoted in its place)."""
    if cluster.server_on(event.port).process is None:
        cluster.server_on(event.port).start()
    cluster.wait_ready()
