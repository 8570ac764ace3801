"""The job body, shared by tempotask's tasks and the plain Streams loop, so both do the same work.

``count`` is one INCR; the first job also writes a timestamp and the last one pushes to a list the
benchmark blocks on, which is how a drain is timed without polling Redis.
``latency`` is one INCR plus an RPUSH of how long the job waited before its body started.
``acount`` and ``alatency`` do the same through an async client (redis.asyncio).
"""

from __future__ import annotations

import time

COUNTER = "bench:counter"
FIRST = "bench:first"
DONE = "bench:done"
LATENCIES = "bench:latencies"

now = time.time  # one clock for every process on the machine


def count(client, total: int, *, ring: bool = True) -> int:
    """INCR the counter; the first job stamps the start, the last rings DONE (unless ``ring`` is off)."""
    n = client.incr(COUNTER)
    if n == 1:
        client.set(FIRST, repr(now()))
    if n == total and ring:
        client.rpush(DONE, "1")
    return n


def latency(client, enqueued: float, started: float) -> None:
    client.incr(COUNTER)
    client.rpush(LATENCIES, repr(started - enqueued))


# The same bodies for async handlers, with a redis.asyncio client (tempotask's async scenario, taskiq, bullmq).
async def acount(client, total: int) -> int:
    """``count`` through an async client: one awaited INCR (plus the first job's stamp, the last one's ring)."""
    n = await client.incr(COUNTER)
    if n == 1:
        await client.set(FIRST, repr(now()))
    if n == total:
        await client.rpush(DONE, "1")
    return n


async def alatency(client, enqueued: float, started: float) -> None:
    await client.incr(COUNTER)
    await client.rpush(LATENCIES, repr(started - enqueued))
