"""bullmq for Python (the port of BullMQ): async processor, the queue's default job options."""

from __future__ import annotations

import asyncio

from bullmq import Queue, Worker

from bench import body
from bench.peers import common

QUEUE = "bench"
CONFIGS = {
    "default": {"concurrency": 1},  # the Worker's default
    "best": {"concurrency": 50},
}
_redis = common.async_client()
_queue: Queue | None = None


async def startup() -> None:
    global _queue
    _queue = Queue(QUEUE, {"connection": common.url()})


async def shutdown() -> None:
    if _queue is not None:
        await _queue.close()


async def send_count(total: int) -> None:
    await _queue.add("count", {"total": total})


async def send_stamp(t: float) -> None:
    await _queue.add("stamp", {"t": t})


async def process(job, token) -> None:
    if job.name == "count":
        await body.acount(_redis, job.data["total"])
    else:
        await body.alatency(_redis, job.data["t"], started=body.now())


def run_worker(config: str) -> None:
    async def work() -> None:
        Worker(QUEUE, process, {"connection": common.url(), **CONFIGS[config]})
        await asyncio.Event().wait()  # until SIGTERM ends the process

    asyncio.run(work())
