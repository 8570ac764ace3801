"""A master with 1 replica watched by 3 sentinels, under load: a ``SENTINEL FAILOVER`` and then a
SIGKILL of the master, while 2 worker processes serve 6 queues and 2 cron beats fire every second,
first with ``ENQUEUE_REPLICAS`` 0, then with 1 (see failover.py for the phases and the figures).

The servers are the scenario's own (sentinel_servers.py: free loopback ports,
``down-after-milliseconds`` 1000, the lab's redis-server binary), stopped by pid at the end. A
killed master comes back as a replica of the one promoted in its place, empty (no persistence).
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path
from typing import Any

from tempotask_django.chaos.failover import CRONS, Event, finish, run_phase, start_processes
from tempotask_django.chaos.lab import Lab
from tempotask_django.chaos.report import Result
from tempotask_django.chaos.scenarios import scenario
from tempotask_django.chaos.scenarios.cluster_failover import QUEUE_CONFIGS, STALLED_TIMEOUT
from tempotask_django.chaos.sentinel_servers import MASTER_NAME, SentinelSetup


@scenario(
    "sentinel_failover",
    "Sentinel, 1 master + 1 replica + 3 sentinels: {jobs:,} jobs over 6 queues, {processes} worker processes, "
    "{beats} beats (every-second cron); with ENQUEUE_REPLICAS 0 then 1, a SENTINEL FAILOVER and a master SIGKILL",
    short={"jobs": 3000, "rate": 150, "processes": 2, "concurrency": 4, "beats": 2, "max_ms": 5},
    long={"jobs": 10_000, "rate": 150, "processes": 2, "concurrency": 4, "beats": 2, "max_ms": 5},
)
def sentinel_failover(lab: Lab, params: dict[str, Any], rng: random.Random) -> Result:
    result = Result()
    queues = list(QUEUE_CONFIGS)
    with SentinelSetup(
        Path(tempfile.mkdtemp(prefix="sentinel-", dir=lab.workdir)).resolve(), binary=lab.server.binary
    ) as setup:
        try:
            lab.configure(
                REDIS_MODE="sentinel",
                SENTINELS=setup.sentinel_addresses,
                SENTINEL_MASTER=MASTER_NAME,
                QUEUES=QUEUE_CONFIGS,
                CRONS=CRONS,
                CRON_BEAT_HEARTBEAT=1,
                STALLED_TIMEOUT=STALLED_TIMEOUT,
                MAX_JOBS_PER_STATUS=3 * params["jobs"],
            )
            workers, beats = start_processes(lab, queues, params)
            phases = []
            for replicas in (0, 1):
                events = [lambda: _failover(setup, queues), lambda: _kill(setup, queues)]
                phases.append(run_phase(lab, replicas, queues, params, rng, events, lambda e: _heal(setup, e)))
            finish(lab, result, phases, workers, beats)
        finally:
            for command in lab.commands:
                command.kill()
    return result


def _failover(setup: SentinelSetup, queues: list[str]) -> Event:
    port = setup.master_port()
    started = time.time()
    setup.failover()  # returns once every sentinel names the new master
    return Event("SENTINEL FAILOVER", queues, started, time.time(), port=port)


def _kill(setup: SentinelSetup, queues: list[str]) -> Event:
    port = setup.master_port()
    started = time.time()
    setup.server_on(port).kill()
    setup.wait_for_new_master(port)
    return Event("SIGKILL of the master", queues, started, time.time(), port=port)


def _heal(setup: SentinelSetup, event: Event) -> None:
    """A killed master comes back as a replica of the new one; then the sentinels must know a synced
    replica again (after a SENTINEL FAILOVER, once they have turned the old master into one)."""
    server = setup.server_on(event.port)
    if server.process is None:
        server.extra_args = ["--replicaof", "127.0.0.1", str(setup.master_port())]
        server.start()
    setup.wait_ready()
    deadline = time.monotonic() + 60
    while not _replica_online(setup):
        if time.monotonic() > deadline:
            raise TimeoutError("the master has no synced replica")
        time.sleep(0.1)


def _replica_online(setup: SentinelSetup) -> bool:
    """The master the sentinels name has a replica whose initial sync is over."""
    try:
        info = setup.client_of(setup.master_port()).info("replication")
    except Exception:  # the master being switched: not yet
        return False
    replicas = [value for name, value in info.items() if name.startswith("slave") and isinstance(value, dict)]
    return info.get("role") == "master" and any(replica.get("state") == "online" for replica in replicas)
