"""Live processes (workers, cron beats) announcing themselves with a heartbeat.

Each kind keeps a ZSET ``index`` (member id -> last heartbeat, ms) and one HASH per member with its
info, which expires when the member stops renewing it: a process that dies, even with SIGKILL,
disappears after its TTL without anyone cleaning up. Readers skip index entries whose hash expired;
each heartbeat trims index entries older than its TTL.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

import redis


def publish(
    client: redis.Redis, index: str, key: str, member: str, info: Mapping[str, Any], ttl: float, now_ms: int
) -> None:
    """Write ``member``'s info and heartbeat (``now_ms``, the server clock), valid ``ttl`` seconds; one round trip."""
    ttl_ms = max(1, int(ttl * 1000))
    pipe = client.pipeline(transaction=False)
    pipe.hset(key, mapping={**{name: str(value) for name, value in info.items()}, "heartbeat": now_ms})
    pipe.pexpire(key, ttl_ms)
    pipe.zadd(index, {member: now_ms})
    pipe.zremrangebyscore(index, "-inf", now_ms - ttl_ms)
    pipe.execute()


def withdraw(client: redis.Redis, index: str, key: str, member: str) -> None:
    """Remove ``member`` at once (a clean stop), instead of waiting for its TTL."""
    pipe = client.pipeline(transaction=False)
    pipe.delete(key)
    pipe.zrem(index, member)
    pipe.execute()


def worker_figures(worker: Mapping[str, str], now_ms: int = 0) -> dict[str, Any]:
    """A worker's heartbeat info (strings, as published) as numbers: its queues, threads, prefetch,
    jobs running and done, and the seconds since its heartbeat by the server clock ``now_ms`` (None
    without it). What the admin, ``tempotask stats`` and the metrics read."""
    heartbeat = int(worker.get("heartbeat") or 0)
    return {
        "queues": [queue for queue in worker.get("queues", "").split(",") if queue],
        "concurrency": int(worker.get("concurrency") or 0),
        "prefetch": int(worker.get("prefetch") or 0),
        "running": int(worker.get("running") or 0),
        "jobs_done": int(worker.get("jobs_done") or 0),
        "heartbeat_age": max(0.0, (now_ms - heartbeat) / 1000) if heartbeat and now_ms else None,
    }


def live(client: redis.Redis, index: str, key_of: Callable[[str], str]) -> list[dict[str, str]]:
    """Every member whose info has not expired, most recent heartbeat first (two round trips)."""
    ids = cast(list[str], client.zrevrange(index, 0, -1))
    if not ids:
        return []
    pipe = client.pipeline(transaction=False)
    for member in ids:
        pipe.hgetall(key_of(member))
    return [{"id": member, **info} for member, info in zip(ids, pipe.execute(), strict=True) if info]
