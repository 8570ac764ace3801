"""Prometheus metrics of every queue, read from Redis at scrape time (``prometheus_client`` extra).

A scrape costs a bounded number of reads, whatever the history size: one pipeline of the stats
script per queue (counts by status, paused, oldest waiting), one of the queues' metric counters
(a HASH per queue whose fields grow with task names, not jobs), the live workers and beats.

Metrics (labels in braces):

- ``tempotask_jobs{queue,status}``: jobs in each status now.
- ``tempotask_queue_paused{queue}``, ``tempotask_oldest_waiting_seconds{queue}``.
- ``tempotask_jobs_completed_total{queue,task}``, ``tempotask_jobs_failed_total{queue,task}`` (failed
  for good), ``tempotask_jobs_retried_total{queue,task}`` (failed attempts followed by a retry),
  ``tempotask_jobs_cancelled_total{queue,task}``.
- ``tempotask_job_duration_seconds{queue,task}``: histogram of attempts, start to recorded end.
- ``tempotask_workers``, ``tempotask_queue_workers{queue}``: live worker processes.
- ``tempotask_beats``, ``tempotask_beat_heartbeat_age_seconds``: live cron beats, and the age of
  the newest heartbeat (absent when no beat is alive).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from tempotask_django.job import JobStatus
from tempotask_django.ops import backend
from tempotask_django.storage.presence import worker_figures

# The histogram's upper bounds, seconds: DURATION_BOUNDS_MS of lua/lib.lua (a test checks they match).
# Every series gets every bucket, so a bucket set never changes under a query.
DURATION_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

OUTCOMES = {
    "completed": "Jobs completed.",
    "failed": "Jobs failed for good (no attempt left, or a poison pill).",
    "retried": "Failed attempts followed by a retry.",
    "cancelled": "Jobs cancelled (before they started, or stopped while running).",
}


class TempotaskCollector(Collector):
    """Builds every metric from Redis on each ``collect()``."""

    def collect(self) -> Iterator[Metric]:
        queues = backend.all_queues()
        stats = backend.queue_stats(queues)
        counters = backend.metric_counters(queues)
        workers = backend.workers()
        beats = backend.beats()
        now_ms = backend.server_time_ms()
        yield from _queue_gauges(stats)
        yield from _job_counters(counters)
        yield _durations(counters)
        yield from _process_gauges(queues, workers, beats, now_ms)


def _queue_gauges(stats: list[backend.QueueStats]) -> Iterator[Metric]:
    jobs = GaugeMetricFamily("tempotask_jobs", "Jobs in each status.", labels=["queue", "status"])
    paused = GaugeMetricFamily("tempotask_queue_paused", "1 while the queue is paused.", labels=["queue"])
    oldest = GaugeMetricFamily(
        "tempotask_oldest_waiting_seconds", "How long the longest-waiting job has waited.", labels=["queue"]
    )
    for row in stats:
        for status in JobStatus:
            jobs.add_metric([row.queue, status.value], getattr(row, status.value))
        paused.add_metric([row.queue], 1 if row.paused else 0)
        oldest.add_metric([row.queue], row.oldest_job_age or 0.0)
    yield from (jobs, paused, oldest)


def _job_counters(counters: dict[str, dict[str, int]]) -> Iterator[Metric]:
    families = {
        outcome: CounterMetricFamily(f"tempotask_jobs_{outcome}", doc, labels=["queue", "task"])
        for outcome, doc in OUTCOMES.items()
    }
    for queue, fields in sorted(counters.items()):
        for field, count in sorted(fields.items()):
            outcome, _, task = field.partition(":")
            if outcome in families and task:
                families[outcome].add_metric([queue, task], count)
    yield from families.values()


def _durations(counters: dict[str, dict[str, int]]) -> Metric:
    histogram = HistogramMetricFamily(
        "tempotask_job_duration_seconds", "Attempts by duration, start to recorded end.", labels=["queue", "task"]
    )
    for queue, fields in sorted(counters.items()):
        buckets: dict[str, dict[float, int]] = defaultdict(dict)
        total_ms: dict[str, int] = {}
        for field, count in fields.items():
            kind, _, rest = field.partition(":")
            if kind == "duration":
                label, _, task = rest.partition(":")
                try:
                    buckets[task][float(label)] = count
                except ValueError:
                    continue
            elif kind == "duration_ms":
                total_ms[rest] = count
        for task in sorted(buckets):
            cumulative, running = [], 0
            for bound in (*DURATION_BOUNDS, float("inf")):
                running += buckets[task].get(bound, 0)
                cumulative.append(("+Inf" if bound == float("inf") else repr(bound), running))
            histogram.add_metric([queue, task], cumulative, sum_value=total_ms.get(task, 0) / 1000)
    return histogram


def _process_gauges(
    queues: list[str], workers: list[dict[str, str]], beats: list[backend.BeatInfo], now_ms: int
) -> Iterator[Metric]:
    yield GaugeMetricFamily("tempotask_workers", "Live worker processes.", value=len(workers))
    per_queue = GaugeMetricFamily(
        "tempotask_queue_workers", "Live worker processes serving the queue.", labels=["queue"]
    )
    served: dict[str, int] = defaultdict(int)
    for worker in workers:
        for queue in worker_figures(worker)["queues"]:
            served[queue] += 1
    for queue in queues:
        per_queue.add_metric([queue], served[queue])
    yield per_queue
    yield GaugeMetricFamily("tempotask_beats", "Live cron beats.", value=len(beats))
    heartbeats = [beat.heartbeat.timestamp() * 1000 for beat in beats if beat.heartbeat is not None]
    if heartbeats:
        newest = max(heartbeats)
        yield GaugeMetricFamily(
            "tempotask_beat_heartbeat_age_seconds",
            "Seconds since the newest cron beat heartbeat.",
            value=max(0.0, (now_ms - newest) / 1000),
        )


def registry() -> CollectorRegistry:
    """A registry holding only tempotask's collector (not the process's own metrics)."""
    collectors = CollectorRegistry(auto_describe=False)
    collectors.register(TempotaskCollector())
    return collectors
