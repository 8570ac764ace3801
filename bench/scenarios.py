"""One run of each scenario, for tempotask ("ours") and for the plain Streams loop ("ceiling").

Every function takes a Bench (the Redis server and options) and returns plain numbers; run.py
repeats them, interleaving ours and the ceiling, and takes medians. Django is set up by run.py
before this module is imported (the enqueue scenarios call tempotask in this process).
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from bench import body, ceiling, procs
from bench.benchapp import tasks
from tempotask_django.storage.connection import get_default_store, reset_default_store

BATCH = 100
# How often the benchmark looks at the processing set once the last job has started, seconds.
FINISH_POLL = 0.0005


@dataclass
class Bench:
    url: str
    logs: Path
    concurrency: int
    prefetch: int = 0
    jobs: int = 10_000
    latency_jobs: int = 1_000
    latency_rate: float = 200.0
    idle_seconds: float = 30.0
    tempotask: dict = field(default_factory=dict)

    @property
    def worker_options(self) -> list[str]:
        """runworkers options for S2 and S3: --concurrency, and --prefetch when set."""
        return ["--concurrency", str(self.concurrency), *(["--prefetch", str(self.prefetch)] if self.prefetch else [])]

    @property
    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True)

    def fresh(self) -> redis.Redis:
        r = self.redis
        r.flushall()
        reset_default_store()  # forget queues registered in a flushed database
        return r

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"


# -- S1 / S1b: enqueue -----------------------------------------------------------------------------
def enqueue_each(bench: Bench) -> dict[str, float]:
    r = bench.fresh()
    ceiling.prepare(r)
    ceiling_rate = bench.jobs / ceiling.enqueue_each(r, bench.jobs)
    bench.fresh()
    data = {"total": bench.jobs}
    start = time.perf_counter()
    for _ in range(bench.jobs):
        tasks.incr.enqueue(data)
    ours_rate = bench.jobs / (time.perf_counter() - start)
    return {"ours": ours_rate, "ceiling": ceiling_rate}


def enqueue_bulk(bench: Bench) -> dict[str, float]:
    r = bench.fresh()
    ceiling.prepare(r)
    ceiling_rate = bench.jobs / ceiling.enqueue_pipelined(r, bench.jobs)
    bench.fresh()
    ours_rate = bench.jobs / _enqueue_bulk(bench.jobs)
    return {"ours": ours_rate, "ceiling": ceiling_rate}


def _enqueue_bulk(total: int, task=tasks.incr) -> float:
    data = {"total": total}
    start = time.perf_counter()
    for offset in range(0, total, BATCH):
        task.enqueue_many([data] * min(BATCH, total - offset))
    return time.perf_counter() - start


# -- S2 / scale: drain -----------------------------------------------------------------------------
def drain_ceiling(bench: Bench, total: int) -> dict[str, float]:
    r = bench.fresh()
    ceiling.prepare(r)
    ceiling.enqueue_pipelined(r, total)
    consumer = procs.ceiling_consumer(bench.url, bench.log("ceiling-drain"), "drain", total)
    cpu = CpuMeter(r, consumer)
    _wait_done(r, consumer, bench.log("ceiling-drain"))
    end = body.now()
    costs = cpu.per_job(total)
    finished = consumer.wait()
    first = float(r.get(body.FIRST))
    return {"rate": total / (end - first), "startup": first - consumer.started, "rss": finished.peak_rss_mib, **costs}


# Async handlers (tasks.aincr) run many at once on the worker's event loop: the setting.
ASYNC_CONCURRENCY = 64


def drain_ours(bench: Bench, total: int, processes: int = 1, handlers: str = "sync") -> dict[str, float]:
    """``total`` jobs waiting, then one ``runworkers --burst``; ``handlers="async"`` drains tasks.aincr."""
    r = bench.fresh()
    task, options = (tasks.incr, bench.worker_options)
    if handlers == "async":
        task, options = (tasks.aincr, ["--concurrency", str(ASYNC_CONCURRENCY)])
    _enqueue_bulk(total, task)
    options = [*options, "--processes", str(processes), "--burst"]
    log = bench.log(f"drain-p{processes}-{handlers}")
    worker = procs.runworkers(bench.url, log, *options, tempotask=_json(bench))
    cpu = CpuMeter(r, worker)
    _wait_done(r, worker, log)
    processing = get_default_store().keys("bench").processing
    while r.zcard(processing):  # the last job to start is not always the last to be recorded
        time.sleep(FINISH_POLL)
    end = body.now()
    costs = cpu.per_job(total)
    finished = worker.wait()
    first = float(r.get(body.FIRST))
    _check_all_completed(r, total)
    return {"rate": total / (end - first), "startup": first - worker.started, "rss": finished.peak_rss_mib, **costs}


class CpuMeter:
    """CPU time of the consumer process(es) and of redis-server from the first job's start on.

    A thread waits for the first job's timestamp (polling every 5 ms), then reads both clocks;
    ``per_job`` reads them again and divides by the jobs run: microseconds of CPU per job (the
    consumer's system part too: threads handing work over show there) and the consumer's context
    switches per job.
    """

    def __init__(self, r: redis.Redis, process: procs.Process) -> None:
        self.r, self.process = r, process
        self.start: tuple[procs.Usage, float] | None = None
        self._thread = threading.Thread(target=self._wait_for_first, daemon=True)
        self._thread.start()

    def _clocks(self) -> tuple[procs.Usage, float]:
        info = self.r.info("cpu")
        return self.process.usage(), info["used_cpu_user"] + info["used_cpu_sys"]

    def _wait_for_first(self) -> None:
        while not self.r.exists(body.FIRST):
            time.sleep(0.005)
        self.start = self._clocks()

    def per_job(self, total: int) -> dict[str, float]:
        self._thread.join(timeout=10)
        if self.start is None:
            return {}
        consumer, server = self._clocks()
        used = consumer - self.start[0]
        return {
            "consumer_us": used.cpu / total * 1e6,
            "consumer_sys_us": used.system / total * 1e6,
            "consumer_switches": used.switches / total,
            "redis_us": (server - self.start[1]) / total * 1e6,
        }


def _wait_done(r: redis.Redis, process: procs.Process, log: Path, timeout: float = 600.0) -> None:
    """Block until the last job rings DONE (in short BLPOPs: redis-py's default socket timeout is 5 s)."""
    deadline = time.monotonic() + timeout
    while not r.blpop([body.DONE], timeout=2):
        if time.monotonic() > deadline or not process.alive():
            process.stop()
            raise RuntimeError(f"the drain did not finish; see {log}")


def _check_all_completed(r: redis.Redis, total: int) -> None:
    """Every job ran once and was recorded as completed (the per-minute counters sum the finishes)."""
    store = get_default_store()
    counts = r.hgetall(store.keys("bench").minutes)  # field "<minute>:<kind>"
    completed = sum(int(value) for field, value in counts.items() if str(field).endswith(":completed"))
    ran = int(r.get(body.COUNTER))
    if (completed, ran) != (total, total):
        raise RuntimeError(f"expected {total} jobs run and completed, got {ran} run and {completed} completed")


def _json(bench: Bench) -> str:
    return json.dumps(bench.tempotask)


# -- S3: latency -----------------------------------------------------------------------------------
def latency_ceiling(bench: Bench) -> list[float]:
    r = bench.fresh()
    ceiling.prepare(r)
    consumer = procs.ceiling_consumer(bench.url, bench.log("ceiling-latency"), "latency", bench.latency_jobs)
    _wait_until_blocked(r, "the ceiling consumer")
    _paced(bench, lambda: ceiling.send_probe(r))
    consumer.wait()
    return _latencies(r, bench.latency_jobs)


def latency_ours(bench: Bench) -> list[float]:
    r = bench.fresh()
    worker = procs.runworkers(bench.url, bench.log("latency"), *bench.worker_options, tempotask=_json(bench))
    _wait_for(lambda: r.zcard(get_default_store().global_keys.workers), "the worker to start")
    _wait_until_blocked(r, "the worker")
    _paced(bench, lambda: tasks.stamp.enqueue({"t": body.now()}))
    _wait_for(lambda: int(r.get(body.COUNTER) or 0) >= bench.latency_jobs, "the probes to run", timeout=60)
    worker.stop()
    worker.wait()
    return _latencies(r, bench.latency_jobs)


def _paced(bench: Bench, send) -> None:
    """Call ``send`` latency_jobs times at latency_rate per second (on a fixed schedule, no drift)."""
    start = time.monotonic()
    for i in range(bench.latency_jobs):
        delay = start + i / bench.latency_rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        send()


def _latencies(r: redis.Redis, expected: int) -> list[float]:
    values = [float(v) * 1000 for v in r.lrange(body.LATENCIES, 0, -1)]
    if len(values) != expected:
        raise RuntimeError(f"expected {expected} latency probes, got {len(values)}")
    return values


def percentiles(values: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98]}


def _wait_until_blocked(r: redis.Redis, who: str) -> None:
    """Wait until ``who`` blocks on a read (idle, waiting for work), then a little more."""
    _wait_for(lambda: r.info("clients")["blocked_clients"] >= 1, f"{who} to wait for work")
    time.sleep(0.2)


def _wait_for(predicate, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.01)


# -- idle cost -------------------------------------------------------------------------------------
def idle_cpu(bench: Bench, beat: bool) -> dict[str, list[float]]:
    """Percent of one core used by an idle worker (and beat) in three windows of idle_seconds / 3."""
    bench.fresh()
    watched = {"worker": procs.runworkers(bench.url, bench.log("idle-worker"), tempotask=_json(bench))}
    if beat:
        watched["beat"] = procs.django_command(bench.url, bench.log("idle-beat"), "runcron")
    time.sleep(3.0)  # past start-up
    window = bench.idle_seconds / 3
    shares: dict[str, list[float]] = {name: [] for name in watched}
    for _ in range(3):
        before = {name: p.usage().cpu for name, p in watched.items()}
        time.sleep(window)
        for name, p in watched.items():
            shares[name].append((p.usage().cpu - before[name]) / window * 100)
    for p in watched.values():
        p.stop()
    for p in watched.values():
        p.wait()
    return shares
