"""RQ: functions enqueued by reference on one queue."""

from __future__ import annotations

import logging

import redis
from rq import Queue, SimpleWorker, Worker

from bench import body
from bench.peers import common

_redis = common.client()
# RQ needs a connection of its own that returns bytes (decode_responses off).
_queue = Queue("bench", connection=redis.Redis.from_url(common.url()))


def count(total: int) -> None:
    body.count(_redis, total)


def stamp(t: float) -> None:
    body.latency(_redis, t, started=body.now())


def send_count(total: int) -> None:
    _queue.enqueue(count, total)


def send_stamp(t: float) -> None:
    _queue.enqueue(stamp, t)


def run_worker(config: str) -> None:
    if config == "default":
        # The library's default worker: a forked work horse per job, INFO log lines per job.
        Worker([_queue], connection=_queue.connection).work()
    else:
        # No fork per job, and no log line per job.
        SimpleWorker([_queue], connection=_queue.connection).work(logging_level=logging.WARNING)
