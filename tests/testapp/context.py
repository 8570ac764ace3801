"""App context for the test tasks: a ledger that records every handler run in Redis."""

import json
import os
import time

import redis
from django.conf import settings

LEDGER_KEY = "tests:ledger"


class Ledger:
    """Append-only record of handler runs, readable from the test process."""

    def __init__(self, url: str) -> None:
        if os.environ.get("TEMPOTASK_TEST_REDIS_MODE") == "cluster":
            from redis.cluster import RedisCluster

            self.client = RedisCluster.from_url(url, decode_responses=True)
        else:
            self.client = redis.Redis.from_url(url, decode_responses=True)

    def record(self, event: str, job_id: str, **extra) -> None:
        entry = {"event": event, "job": job_id, "pid": os.getpid(), "t": time.time(), **extra}
        self.client.rpush(LEDGER_KEY, json.dumps(entry))

    def entries(self, event: str | None = None) -> list[dict]:
        items = [json.loads(item) for item in self.client.lrange(LEDGER_KEY, 0, -1)]
        return [item for item in items if event is None or item["event"] == event]


def build_context() -> dict:
    return {"ledger": Ledger(settings.TEMPOTASK["REDIS_URL"]), "greeting": "hello"}


# TEMPOTASK["CONTEXT"] may name a plain mapping too.
PLAIN_CONTEXT = {"greeting": "from a plain mapping"}


def counted_context() -> dict:
    """``build_context``, recording each call in the ledger (tests count the calls per process)."""
    values = build_context()
    values["ledger"].record("context_built", "")
    return values
