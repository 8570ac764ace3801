"""Huey: RedisHuey (blocking reads), tasks with no result stored (they return None)."""

from __future__ import annotations

from huey import RedisHuey

from bench import body
from bench.peers import common

huey = RedisHuey("bench", url=common.url())
_redis = common.client()

CONFIGS = {
    "default": {"workers": 1, "worker_type": "thread"},  # huey_consumer's defaults
    "best": {"workers": 8, "worker_type": "thread"},  # jobs overlap their Redis round trips
}


@huey.task()
def count(total: int) -> None:
    body.count(_redis, total)


@huey.task()
def stamp(t: float) -> None:
    body.latency(_redis, t, started=body.now())


def send_count(total: int) -> None:
    count(total)


def send_stamp(t: float) -> None:
    stamp(t)


def run_worker(config: str) -> None:
    huey.create_consumer(**CONFIGS[config]).run()
