"""Riding out Redis outages: which errors mean "Redis is unreachable for now", and a throttle that
backs off and logs a streak of them without flooding the log."""

from __future__ import annotations

import logging
import time

import redis
from redis.exceptions import ClusterDownError, SlotNotCoveredError

logger = logging.getLogger("tempotask")

# redis-py 8.2 added a class for "a slot map refresh reached no node"; the older versions that
# pyproject.toml allows lack it (importing it by name broke `import tempotask_django` there).
_NO_NODE_REACHABLE = getattr(redis.exceptions, "RedisClusterUnreachableError", ClusterDownError)

# Errors talking to Redis that go away by themselves: retried with backoff, never fatal. On Redis
# Cluster, a failover under way: CLUSTERDOWN, a slot map read while a master was down, no node reachable.
REDIS_ERRORS: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.BusyLoadingError,
    ClusterDownError,
    SlotNotCoveredError,
    _NO_NODE_REACHABLE,
)
# First retry delay and the cap, seconds.
BACKOFF_START, BACKOFF_CAP = 0.1, 5.0
# At most one log line per this many seconds while Redis keeps failing.
ERROR_LOG_INTERVAL = 30.0


class ErrorThrottle:
    """Logs the first error of a streak, then at most one summary line per interval."""

    def __init__(self, interval: float = ERROR_LOG_INTERVAL, cap: float = BACKOFF_CAP) -> None:
        self.interval = interval
        self.cap = cap
        self.streak = 0
        self.last_logged = 0.0
        self.delay = BACKOFF_START

    def failed(self, what: str, exc: BaseException) -> float:
        """Record a failure; returns how long to back off."""
        self.streak += 1
        now = time.monotonic()
        if self.streak == 1 or now - self.last_logged >= self.interval:
            logger.error("%s failed (%d in a row, retrying with backoff): %s", what, self.streak, exc)
            self.last_logged = now
        delay, self.delay = self.delay, min(self.cap, self.delay * 2)
        return delay

    def succeeded(self) -> None:
        if self.streak:
            logger.warning("Redis is reachable again after %d failed calls", self.streak)
        self.streak, self.delay = 0, BACKOFF_START
