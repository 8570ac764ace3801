"""The handlers' ``ctx``: one Redis client per worker process, for the job body."""

import os

import redis


def build_context() -> dict:
    return {"redis": redis.Redis.from_url(os.environ["BENCH_REDIS_URL"], decode_responses=True)}
