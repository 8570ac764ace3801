"""What running a task through Django's Tasks framework costs next to a plain tempotask job.

Measures, for a no-op task of each kind, the enqueue latency (median per call) and the processing
rate of an in-process worker (median of rounds). Prints ratios; asserts nothing. Uses the test
project's settings and Redis database (it flushes that database)::

    TEMPOTASK_TEST_REDIS_URL=redis://127.0.0.1:6379/9 PYTHONPATH=. .venv/bin/python bench/djtasks_overhead.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django

django.setup()

from tempotask_django import add_job  # noqa: E402
from tempotask_django.storage.connection import get_default_store  # noqa: E402
from tempotask_django.worker import Worker  # noqa: E402
from tests.testapp import dtasks, task_signals  # noqa: E402

# The test app records every task signal in Redis for the tests; that is not what we measure.
task_signals.disconnect()


def enqueue_native() -> None:
    add_job("noop", None)


def enqueue_django() -> None:
    dtasks.noop.enqueue()


KINDS = {"tempotask job": enqueue_native, "Django task": enqueue_django}


def enqueue_latencies(enqueue, count: int) -> list[float]:
    latencies = []
    for _ in range(count):
        start = time.perf_counter()
        enqueue()
        latencies.append(time.perf_counter() - start)
    return latencies


def processing_rate(count: int, concurrency: int) -> float:
    """Jobs per second from the worker's start until its last job is recorded.

    Not until ``run()`` returns: a burst worker may idle up to IDLE_BLOCK_MS before it notices the
    queue is empty, which would swamp the difference being measured.
    """
    worker = Worker(["default"], concurrency=concurrency)
    thread = threading.Thread(target=worker.run)
    start = time.perf_counter()
    thread.start()
    while worker.jobs_done < count:
        time.sleep(0.001)
    elapsed = time.perf_counter() - start
    worker.request_stop()
    thread.join()
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=4)
    options = parser.parse_args()
    store = get_default_store()
    enqueue_us: dict[str, list[float]] = {kind: [] for kind in KINDS}
    rates: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for _ in range(options.rounds):
        for kind, enqueue in KINDS.items():  # alternate kinds so machine noise hits both alike
            store.client.flushdb()
            enqueue_us[kind].append(statistics.median(enqueue_latencies(enqueue, options.jobs)) * 1e6)
            rates[kind].append(processing_rate(options.jobs, options.concurrency))
    store.client.flushdb()
    print(f"{options.jobs} no-op jobs x {options.rounds} rounds, worker concurrency {options.concurrency}")
    for kind in KINDS:
        print(f"  {kind:14} rounds: " + " ".join(f"{rate:.0f}" for rate in rates[kind]) + " jobs/s")
    for kind in KINDS:
        print(
            f"  {kind:14} enqueue median {statistics.median(enqueue_us[kind]):7.0f} us/call   "
            f"processing median {statistics.median(rates[kind]):7.0f} jobs/s"
        )
    native, django_ = (statistics.median(enqueue_us[k]) for k in KINDS)
    rate_native, rate_django = (statistics.median(rates[k]) for k in KINDS)
    print(
        f"  Django task / tempotask job: enqueue time x{django_ / native:.2f}, "
        f"processing rate x{rate_django / rate_native:.2f}"
    )


if __name__ == "__main__":
    main()
