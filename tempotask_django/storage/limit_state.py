"""Reading the state of a queue's rate and concurrency limits (see lua/limits.lua), for the admin."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from tempotask_django.storage.keys import QueueKeys

# Most limits with parked jobs read per page (each costs two commands, pipelined in one round trip).
MAX_LIMITS_READ = 500


@dataclass(frozen=True)
class LimitState:
    """One limit with jobs parked on it: its id (task name, or task name, space, limit_key value)."""

    limit: str
    parked: int  # jobs waiting on it (status waiting, out of the claimable set)
    running: int  # jobs holding one of its concurrency slots

    @property
    def task(self) -> str:
        return self.limit.split(" ", 1)[0]

    @property
    def key_value(self) -> str | None:
        parts = self.limit.split(" ", 1)
        return parts[1] if len(parts) == 2 else None


def parked_limits(client: redis.Redis, keys: QueueKeys, most: int = MAX_LIMITS_READ) -> tuple[list[LimitState], int]:
    """The limits of a queue with parked jobs (``most`` of them), and how many more there are."""
    limits = [str(limit) for limit in client.zrange(keys.limited, 0, most - 1)]
    pipe = client.pipeline(transaction=False)
    pipe.zcard(keys.limited)
    for limit in limits:
        pipe.zcard(keys.parked(limit))
        pipe.zcard(keys.running(limit))
    total, *counts = pipe.execute()
    states = [
        LimitState(limit, int(counts[2 * i]), int(counts[2 * i + 1]))
        for i, limit in enumerate(limits)
        if int(counts[2 * i])
    ]
    return states, max(0, int(total) - len(limits))


def running_in(client: redis.Redis, keys: QueueKeys, limits: list[str]) -> dict[str, int]:
    """Jobs holding a concurrency slot of each of ``limits`` (one round trip)."""
    pipe = client.pipeline(transaction=False)
    for limit in limits:
        pipe.zcard(keys.running(limit))
    return {limit: int(count) for limit, count in zip(limits, pipe.execute() if limits else [], strict=True)}
