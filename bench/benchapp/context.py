"""The handlers' ``ctx``: Redis clients per worker process for the job body (sync, and redis.asyncio)."""

import os

import redis
import redis.asyncio


def build_context() -> dict:
    url = os.environ["BENCH_REDIS_URL"]
    # The async client connects on first use, on the worker's one event loop for async handlers.
    return {
        "redis": redis.Redis.from_url(url, decode_responses=True),
        "aredis": redis.asyncio.Redis.from_url(url, decode_responses=True),
    }
