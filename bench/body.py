"""The job body, shared by tempotask's tasks and the plain Streams loop, so both do the same work.

``count`` is one INCR; the first job also writes a timestamp and the last one pushes to a list the
benchmark blocks on, which is how a drain is timed without polling Redis.
``latency`` is one INCR plus an RPUSH of how long the job waited before its body started.
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
