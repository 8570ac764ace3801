"""taskiq with taskiq-redis: async tasks on a RedisStreamBroker (acknowledged reads, like ours)."""

from __future__ import annotations

import sys

from taskiq_redis import RedisStreamBroker

from bench import body
from bench.peers import common

broker = RedisStreamBroker(url=common.url())
_redis = common.async_client()

COMMAND = ["taskiq", "worker", "bench.peers.taskiq_peer:broker", "--workers", "1"]
CONFIGS = {
    "default": [*COMMAND],  # up to 100 tasks at once
    "best": [*COMMAND, "--max-async-tasks", "1000", "--max-prefetch", "100"],
}


@broker.task(task_name="count")
async def count(total: int) -> None:
    await body.acount(_redis, total)


@broker.task(task_name="stamp")
async def stamp(t: float) -> None:
    await body.alatency(_redis, t, started=body.now())


async def startup() -> None:
    await broker.startup()


async def shutdown() -> None:
    await broker.shutdown()


async def send_count(total: int) -> None:
    await count.kiq(total)


async def send_stamp(t: float) -> None:
    await stamp.kiq(t)


def run_worker(config: str) -> None:
    from taskiq.__main__ import main

    sys.argv = CONFIGS[config]
    sys.exit(main())
