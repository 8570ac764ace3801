"""The ledger: every handler run, recorded by the task itself in a Redis apart from the queue's.

A run is recorded twice: ``start`` when the handler begins and ``end`` when it returns. The ledger
lives on its own server so that killing, restarting or emptying the queue's Redis cannot touch it.
"""

from __future__ import annotations

import math
import os
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import redis

LEDGER_KEY = "chaos:ledger"
# Entries read per LRANGE call.
READ_CHUNK = 20_000


@dataclass(frozen=True)
class Run:
    """One ledger line: ``event`` (start or end) of ``job``'s attempt in process ``pid`` at ``t``."""

    event: str
    job: str
    attempt: int
    pid: int
    t: float


class Ledger:
    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, decode_responses=True)

    def record(self, event: str, job_id: str, attempt: int = 0) -> None:
        self.client.rpush(LEDGER_KEY, f"{event} {job_id} {attempt} {os.getpid()} {time.time():.6f}")

    def size(self) -> int:
        return int(self.client.llen(LEDGER_KEY))

    def clear(self) -> None:
        self.client.delete(LEDGER_KEY)

    def entries(self) -> list[Run]:
        runs = []
        for start in range(0, self.size(), READ_CHUNK):
            for line in self.client.lrange(LEDGER_KEY, start, start + READ_CHUNK - 1):
                event, job, attempt, pid, t = str(line).split(" ")
                runs.append(Run(event, job, int(attempt), int(pid), float(t)))
        return runs

    def close(self) -> None:
        self.client.close()


def by_job(runs: Iterable[Run], event: str = "start") -> dict[str, list[Run]]:
    """The ``event`` lines of each job, in the order they were recorded."""
    grouped: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        if run.event == event:
            grouped[run.job].append(run)
    return grouped


def duplicates(runs: Iterable[Run], event: str = "start") -> int:
    """Handler runs beyond the first of each job (runs - distinct jobs)."""
    grouped = by_job(runs, event)
    return sum(len(items) for items in grouped.values()) - len(grouped)


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100, nearest rank) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]
