"""One queue with 6 partitions on a 3-master Redis Cluster: keys and commands per master, and the
drain rate against the same queue unpartitioned on the same cluster.

The cluster is the chaos suite's own (chaos/cluster_servers.py: 3 masters with a replica each, on free
ports, stopped by pid), from the lab's server binary.
Both layouts run the same workload: the workers start first, the queue is paused while the jobs are
enqueued, and the drain is timed from its resume to its last job, so process start-up is not counted.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from tempotask_django.chaos.cluster_servers import ClusterSetup
from tempotask_django.chaos.lab import QUEUE, Lab
from tempotask_django.chaos.report import Result
from tempotask_django.chaos.scenarios import scenario
from tempotask_django.chaos.workload import ENQUEUE_BATCH, stop_figures

# The most the busiest and the idlest master may differ, as a fraction of the mean.
MOST_SPREAD = 0.20


@scenario(
    "partitions",
    "{jobs:,} jobs in one queue with {partitions} partitions on a 3-master cluster, {processes}x{concurrency} "
    "workers: keys and commands per master, drain rate against the queue unpartitioned",
    short={"jobs": 10_000, "partitions": 6, "processes": 2, "concurrency": 4},
    long={"jobs": 30_000, "partitions": 6, "processes": 2, "concurrency": 8},
)
def partitions(lab: Lab, params: dict[str, Any], rng: random.Random) -> Result:
    result = Result()
    with ClusterSetup(_fresh(lab.workdir / "cluster"), binary=lab.server.binary) as cluster:
        spread = _run(lab, cluster, params, rng, params["partitions"], result)
        result.figure("keys per master after the enqueue", spread["keys"])
        result.figure("commands per master during the drain", spread["ops"])
        for what in ("keys", "ops"):
            counts = list(spread[what].values())
            mean = sum(counts) / len(counts)
            gap = (max(counts) - min(counts)) / mean if mean else 1.0
            result.figure(f"{what} spread (max - min) / mean", round(gap, 3))
            result.must_equal(f"{what} spread within {MOST_SPREAD:.0%}", gap <= MOST_SPREAD, True)
        partitioned = spread["rate"]
        unpartitioned = _run(lab, cluster, params, rng, 1, result)
        plain = unpartitioned["rate"]
        result.figure("unpartitioned: commands per master during the drain", unpartitioned["ops"])
    result.figure("drain rate, partitioned, jobs/s", round(partitioned))
    result.figure("drain rate, unpartitioned, jobs/s", round(plain))
    result.figure("partitioned / unpartitioned", round(partitioned / plain, 2) if plain else None)
    result.note(
        "Both layouts share this machine's CPUs with the three masters and the workers: the drain rates "
        "compare their cost on one host, not what more hosts would give. What partitioning buys is the "
        "spread: unpartitioned, one master serves every command of the queue."
    )
    return result


def _enqueue(jobs: int, rng: random.Random) -> None:
    """``jobs`` chaos.work jobs whose ids come from the seeded ``rng``: the same partitions every run."""
    from tempotask_django import api

    for start in range(0, jobs, ENQUEUE_BATCH):
        batch = range(min(ENQUEUE_BATCH, jobs - start))
        api.add_jobs(
            [{"name": "chaos.work", "data": {"ms": 0}, "job_id": f"p{rng.getrandbits(64):016x}"} for _ in batch]
        )


def _fresh(path: Path) -> Path:
    """A directory that did not exist yet (ClusterSetup makes its node folders in it), absolute: the
    servers run in their own folders, where a path relative to ours (``--out build/chaos``) is wrong."""
    path.mkdir(parents=True, exist_ok=True)
    index = 0
    while (path / f"run{index}").exists():
        index += 1
    (path / f"run{index}").mkdir()
    return (path / f"run{index}").resolve()


def _run(lab: Lab, cluster: Any, params: dict[str, Any], rng: random.Random, count: int, result: Result) -> dict:
    """Drain ``params["jobs"]`` jobs from the queue split into ``count`` partitions (1: unpartitioned);
    returns the keys and commands per master and the drain rate."""
    jobs = params["jobs"]
    label = f"{count} partitions" if count > 1 else "unpartitioned"
    cluster.flush()
    # A queue listed in QUEUES runs at most its own CONCURRENCY per worker: the same in both layouts.
    queues = {QUEUE: {"CONCURRENCY": params["concurrency"], **({"PARTITIONS": count} if count > 1 else {})}}
    lab.configure(REDIS_MODE="cluster", REDIS_URL=cluster.url, QUEUES=queues, MAX_JOBS_PER_STATUS=jobs * 2)
    store = lab.store
    workers = lab.workers(params["processes"], params["concurrency"])
    deadline = time.monotonic() + 60
    while len(store.inspect.list_workers()) < params["processes"] and time.monotonic() < deadline:
        time.sleep(0.1)
    store.pause_queue(QUEUE)
    _enqueue(jobs, rng)
    masters = cluster.master_ports()
    keys = {}
    for port in masters:
        with cluster.client_of(port) as client:
            keys[port] = int(client.dbsize())
            client.config_resetstat()
    started = time.monotonic()
    store.resume_queue(QUEUE)
    drained = False
    deadline = started + 120 + jobs * 0.05
    while time.monotonic() < deadline:
        stats = store.inspect.queue_stats(QUEUE)
        if stats.completed + stats.failed >= jobs and not (stats.waiting or stats.processing or stats.delayed):
            drained = True
            break
        time.sleep(0.05)
    seconds = time.monotonic() - started
    ops: dict[int, int] = {}
    calls: dict[str, int] = {}
    for port in masters:
        with cluster.client_of(port) as client:
            for name, stat in client.info("commandstats").items():  # counted since the reset at the resume
                calls[name] = calls.get(name, 0) + int(stat["calls"])
                ops[port] = ops.get(port, 0) + int(stat["calls"])
    result.must_equal(f"{label}: drained", drained, True)
    result.must_equal(f"{label}: jobs completed", store.inspect.count_jobs(QUEUE, "completed"), jobs)
    result.figure(f"{label}: seconds to drain", round(seconds, 2))
    result.figure(f"{label}: Redis commands per job, all masters", round(sum(ops.values()) / jobs, 1))
    for name in ("cmdstat_evalsha", "cmdstat_xread", "cmdstat_xreadgroup"):
        result.figure(
            f"{label}: {name.removeprefix('cmdstat_').upper()} calls per job", round(calls.get(name, 0) / jobs, 2)
        )
    stop_figures(result, workers)
    return {"keys": keys, "ops": ops, "rate": jobs / seconds if seconds else 0.0}
