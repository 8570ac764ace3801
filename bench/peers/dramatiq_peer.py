"""Dramatiq: actors on the Redis broker, run by the ``dramatiq`` command (one process)."""

from __future__ import annotations

import sys

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from bench import body
from bench.peers import common

dramatiq.set_broker(RedisBroker(url=common.url()))
_redis = common.client()

COMMAND = ["dramatiq", "bench.peers.dramatiq_peer", "--processes", "1"]
CONFIGS = {
    "default": [*COMMAND],  # 8 threads, prefetch 2 per thread
    "best": [*COMMAND, "--threads", "32"],
}


@dramatiq.actor(queue_name="bench")
def count(total: int) -> None:
    body.count(_redis, total)


@dramatiq.actor(queue_name="bench")
def stamp(t: float) -> None:
    body.latency(_redis, t, started=body.now())


def send_count(total: int) -> None:
    count.send(total)


def send_stamp(t: float) -> None:
    stamp.send(t)


def run_worker(config: str) -> None:
    from dramatiq.cli import main

    sys.argv = CONFIGS[config]
    sys.exit(main())
