"""What every Python peer adapter shares; runs in the peer's virtualenv (stdlib and redis-py only).

An adapter module defines ``send_count(total)`` (enqueue one drain job), ``send_stamp(t)`` (enqueue
one latency probe carrying its enqueue time) and ``run_worker(config)`` (block, running jobs, until
SIGTERM). The senders may be coroutine functions (then they run on one event loop, with optional
``startup()``/``shutdown()`` coroutines around them). This module times the senders the same way
for every peer.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import redis

from bench import body

# The worker must be waiting (idle) before probes are sent: one warm-up probe, then this pause.
SETTLE = 1.0


def url() -> str:
    return os.environ["BENCH_REDIS_URL"]


def client() -> redis.Redis:
    return redis.Redis.from_url(url(), decode_responses=True)


def async_client() -> Any:
    import redis.asyncio

    return redis.asyncio.Redis.from_url(url(), decode_responses=True)


def enqueue(adapter: ModuleType, total: int) -> dict[str, float]:
    """S1: ``total`` calls of ``send_count`` in a row; the seconds they took."""
    return _drive(adapter, lambda send: _timed(send, total, lambda: (total,)))


def probe(adapter: ModuleType, total: int, rate: float) -> dict[str, float]:
    """S3: one warm-up probe run to completion, then ``total`` probes at ``rate`` per second."""
    return _drive(adapter, lambda send: _probes(send, total, rate), sender="send_stamp")


def _drive(adapter: ModuleType, plan: Callable[[Callable], Any], sender: str = "send_count") -> dict[str, float]:
    send = getattr(adapter, sender)
    if not inspect.iscoroutinefunction(send):
        return plan(send)

    async def run() -> dict[str, float]:
        if hasattr(adapter, "startup"):
            await adapter.startup()
        try:
            return await plan(send)
        finally:
            if hasattr(adapter, "shutdown"):
                await adapter.shutdown()

    return asyncio.run(run())


def _timed(send: Callable, total: int, args: Callable[[], tuple]) -> Any:
    if inspect.iscoroutinefunction(send):

        async def timed() -> dict[str, float]:
            start = time.perf_counter()
            for _ in range(total):
                await send(*args())
            return {"seconds": time.perf_counter() - start}

        return timed()
    start = time.perf_counter()
    for _ in range(total):
        send(*args())
    return {"seconds": time.perf_counter() - start}


def _probes(send: Callable, total: int, rate: float) -> Any:
    r = client()
    is_async = inspect.iscoroutinefunction(send)

    def settle() -> None:
        deadline = time.monotonic() + 60
        while not r.exists(body.COUNTER):
            if time.monotonic() > deadline:
                raise RuntimeError("the warm-up probe did not run within 60 s")
            time.sleep(0.01)
        time.sleep(SETTLE)
        r.delete(body.COUNTER, body.LATENCIES)

    if is_async:

        async def paced() -> dict[str, float]:
            await send(body.now())
            await asyncio.get_running_loop().run_in_executor(None, settle)
            start = time.monotonic()
            for i in range(total):
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await send(body.now())
            return {"seconds": time.monotonic() - start}

        return paced()
    send(body.now())
    settle()
    start = time.monotonic()
    for i in range(total):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        send(body.now())
    return {"seconds": time.monotonic() - start}


def versions(names: list[str]) -> dict[str, str]:
    from importlib import metadata

    return {name: metadata.version(name) for name in names}


def emit(result: dict) -> None:
    """The one line of JSON the runner reads from the adapter's stdout."""
    print("RESULT " + json.dumps(result), flush=True)
