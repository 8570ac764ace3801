"""Celery: one task per job body, Redis as the broker, results ignored (nothing reads them)."""

from __future__ import annotations

from celery import Celery

from bench import body
from bench.peers import common

app = Celery("bench", broker=common.url())
app.conf.update(task_ignore_result=True, broker_connection_retry_on_startup=True)
_redis = common.client()  # redis-py reconnects in each forked pool process by itself

WORKER = ["worker", "--loglevel", "WARNING"]
CONFIGS = {
    # The library's defaults (prefork pool, prefetch multiplier 4), one pool process.
    "default": [*WORKER, "--concurrency", "1"],
    # No pool hand-off: jobs run in the consumer process; no start-up gossip with other workers.
    "best": [
        *WORKER,
        "--pool",
        "solo",
        "--prefetch-multiplier",
        "100",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ],
}


@app.task(name="count")
def count(total: int) -> None:
    body.count(_redis, total)


@app.task(name="stamp")
def stamp(t: float) -> None:
    body.latency(_redis, t, started=body.now())


def send_count(total: int) -> None:
    count.delay(total)


def send_stamp(t: float) -> None:
    stamp.delay(t)


def run_worker(config: str) -> None:
    app.worker_main(CONFIGS[config])
