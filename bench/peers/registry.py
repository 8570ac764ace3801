"""The peers of ``bench/run.py --peers``, and what each configuration is, exactly (shown in the table).

Every configuration runs jobs in one process, as the scenario asks; "default" is otherwise the
library's own worker defaults, "best" the fastest setting found for this job (one quick Redis call).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIG_NAMES = ("default", "best")


@dataclass(frozen=True)
class Peer:
    name: str
    label: str
    packages: tuple[str, ...]  # whose versions are reported
    configs: dict[str, str]  # configuration name -> the exact worker setting
    node: bool = False

    @property
    def requirements(self) -> Path:
        return HERE / f"{self.name}.txt"


PEERS: dict[str, Peer] = {
    p.name: p
    for p in (
        Peer(
            "celery",
            "Celery",
            ("celery", "kombu", "redis"),
            {
                "default": "celery worker --concurrency 1 (prefork pool, prefetch multiplier 4)",
                "best": "celery worker --pool solo --prefetch-multiplier 100 --without-gossip --without-mingle"
                " --without-heartbeat",
            },
        ),
        Peer(
            "rq",
            "RQ",
            ("rq", "redis"),
            {
                "default": "Worker(...).work() (a forked work horse per job)",
                "best": "SimpleWorker(...).work(logging_level=WARNING) (no fork, no log line per job)",
            },
        ),
        Peer(
            "huey",
            "Huey",
            ("huey", "redis"),
            {
                "default": "RedisHuey consumer, workers=1, worker_type=thread",
                "best": "RedisHuey consumer, workers=8, worker_type=thread",
            },
        ),
        Peer(
            "dramatiq",
            "Dramatiq",
            ("dramatiq", "redis"),
            {
                "default": "dramatiq --processes 1 (8 threads)",
                "best": "dramatiq --processes 1 --threads 32",
            },
        ),
        Peer(
            "taskiq",
            "taskiq",
            ("taskiq", "taskiq-redis", "redis"),
            {
                "default": "RedisStreamBroker, taskiq worker --workers 1 (100 async tasks at once)",
                "best": "RedisStreamBroker, taskiq worker --workers 1 --max-async-tasks 1000 --max-prefetch 100",
            },
        ),
        Peer(
            "bullmq",
            "bullmq (Python)",
            ("bullmq", "redis"),
            {"default": "Worker concurrency 1 (its default)", "best": "Worker concurrency 50"},
        ),
        Peer(
            "node",
            "BullMQ (Node.js)",
            ("bullmq", "ioredis"),
            {"default": "Worker concurrency 1 (its default)", "best": "Worker concurrency 50"},
            node=True,
        ),
    )
}
