"""The ceiling: a plain redis-py Streams producer and consumer, with no bookkeeping at all.

Producer: XADD one entry at a time, or pipelined in batches of 100. Consumer: XREADGROUP COUNT 100
BLOCK, the job body (bench/body.py) for each entry in turn, then one XACK per batch. This is the
fastest a Python process can move entries through a Redis stream; tempotask is measured against it.

The consumer runs in its own process, as a worker would: ``python -m bench.ceiling drain|latency URL TOTAL``.
"""

from __future__ import annotations

import json
import sys
import time

import redis

from bench import body

STREAM = "ceiling:stream"
GROUP = "g"
CONSUMER = "c"
READ_COUNT = 100
PIPELINE_BATCH = 100


def client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True)


def prepare(r: redis.Redis) -> None:
    r.delete(STREAM)
    r.xgroup_create(STREAM, GROUP, id="0", mkstream=True)


def enqueue_each(r: redis.Redis, total: int) -> float:
    """XADD ``total`` entries one call at a time; returns the seconds taken."""
    data = json.dumps({"total": total})
    start = time.perf_counter()
    for _ in range(total):
        r.xadd(STREAM, {"data": data})
    return time.perf_counter() - start


def enqueue_pipelined(r: redis.Redis, total: int) -> float:
    """XADD ``total`` entries in pipelines of PIPELINE_BATCH; returns the seconds taken."""
    data = json.dumps({"total": total})
    start = time.perf_counter()
    for offset in range(0, total, PIPELINE_BATCH):
        pipe = r.pipeline(transaction=False)
        for _ in range(min(PIPELINE_BATCH, total - offset)):
            pipe.xadd(STREAM, {"data": data})
        pipe.execute()
    return time.perf_counter() - start


def read_batch(r: redis.Redis) -> list[tuple[str, dict[str, str]]]:
    reply = r.xreadgroup(GROUP, CONSUMER, {STREAM: ">"}, count=READ_COUNT, block=1000)
    return reply[0][1] if reply else []


def drain(r: redis.Redis, total: int) -> None:
    """Consume until ``total`` jobs are done; ring DONE once the last batch is acknowledged."""
    done = 0
    while done < total:
        entries = read_batch(r)
        for _, fields in entries:
            done = body.count(r, json.loads(fields["data"])["total"], ring=False)
        if entries:
            r.xack(STREAM, GROUP, *[entry_id for entry_id, _ in entries])
    r.rpush(body.DONE, "1")


def latency(r: redis.Redis, total: int) -> None:
    """Consume ``total`` latency probes (each carries its enqueue time)."""
    done = 0
    while done < total:
        entries = read_batch(r)
        for _, fields in entries:
            body.latency(r, json.loads(fields["data"])["t"], started=body.now())
            done += 1
        if entries:
            r.xack(STREAM, GROUP, *[entry_id for entry_id, _ in entries])


def send_probe(r: redis.Redis) -> None:
    r.xadd(STREAM, {"data": json.dumps({"t": body.now()})})


if __name__ == "__main__":
    mode, url, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
    {"drain": drain, "latency": latency}[mode](client(url), total)
