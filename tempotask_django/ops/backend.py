"""The one door from the operations tools to tempotask's state in Redis.

``manage.py tempotask`` and the health view read and change queues, jobs, schedules, workers and
beats only through these functions, which call the same public functions the API and the admin's
views call (``tempotask_django.api``, the store's inspection and management methods, the cron API).
So a command has the same effect as the admin's action of the same name, and a change of the
storage layer is met here alone.
"""

from __future__ import annotations

import redis
from redis.cluster import RedisCluster

from tempotask_django import api
from tempotask_django.conf import get_settings
from tempotask_django.cron import api as cron_api
from tempotask_django.cron.schedules import collect_schedules
from tempotask_django.job import JobStatus
from tempotask_django.producer import submit
from tempotask_django.storage.connection import get_default_store, make_client
from tempotask_django.storage.crons import BeatInfo, CronInfo, CronStore
from tempotask_django.storage.inspect import QueueStats
from tempotask_django.storage.outage import REDIS_ERRORS
from tempotask_django.storage.records import CancelResult, JobSpec
from tempotask_django.validation import NAME_PATTERN

# Any failure to talk to Redis (unreachable, refused login, read-only replica, ...).
RedisError = redis.RedisError
# Seconds the health check's ping may take to connect and to answer: a probe must not hang.
PING_TIMEOUT = 3.0

__all__ = [
    "REDIS_ERRORS",
    "BeatInfo",
    "CronInfo",
    "JobSpec",
    "QueueStats",
    "RedisError",
    "all_queues",
    "beats",
    "cancel_job",
    "cron_queue",
    "crons",
    "defined_schedule_names",
    "delete_job",
    "find_job_queues",
    "is_known_queue",
    "job_status",
    "metric_counters",
    "pause_cron",
    "pause_queue",
    "ping",
    "purge",
    "queue_stats",
    "resume_cron",
    "resume_queue",
    "retry_failed",
    "retry_job",
    "run_cron_now",
    "server_time_ms",
    "submit_job",
    "workers",
]


# -- reachability -------------------------------------------------------------------------------
def ping() -> None:
    """Raise one of REDIS_ERRORS unless Redis answers a PING within PING_TIMEOUT seconds.

    A client of its own, with timeouts: the default one waits as long as the OS lets a connect hang.
    """
    client = make_client(get_settings(), socket_connect_timeout=PING_TIMEOUT, socket_timeout=PING_TIMEOUT)
    try:
        client.ping()
    finally:
        if isinstance(client, RedisCluster):
            client.close()
        else:
            client.connection_pool.disconnect()  # close() leaves a pool it was given open


def server_time_ms() -> int:
    """The Redis server's clock, which stamps heartbeats and job times."""
    return get_default_store().server_time_ms()


# -- queues -------------------------------------------------------------------------------------
def all_queues() -> list[str]:
    """Every queue known from settings, registered tasks and Redis (what the admin lists)."""
    return api.all_queues()


def is_known_queue(queue: str) -> bool:
    """True for a well-formed name the admin would show (the admin answers 404 otherwise)."""
    return bool(NAME_PATTERN.match(queue)) and queue in api.all_queues()


def metric_counters(queues: list[str]) -> dict[str, dict[str, int]]:
    """Each queue's counters since its first job (see ops/metrics.py)."""
    return get_default_store().inspect.metric_counters(queues)


def queue_stats(queues: list[str]) -> list[QueueStats]:
    return get_default_store().inspect.queue_stats_many(queues)


def pause_queue(queue: str) -> None:
    get_default_store().pause_queue(queue)


def resume_queue(queue: str) -> None:
    get_default_store().resume_queue(queue)


def retry_failed(queue: str) -> int:
    """Queue every failed job of ``queue`` again; returns how many."""
    return get_default_store().retry_failed(queue)


def purge(queue: str, status: str) -> int:
    """Delete every ``status`` (completed, failed or cancelled) job of ``queue``; returns how many."""
    return get_default_store().purge(queue, status)


# -- jobs ---------------------------------------------------------------------------------------
def find_job_queues(job_id: str) -> list[str]:
    """The queues holding a job ``job_id``, in the API's lookup order."""
    return get_default_store().inspect.find_queues(job_id, api.lookup_order())


def job_status(queue: str, job_id: str) -> JobStatus | None:
    jobs = get_default_store().inspect.get_jobs(queue, [job_id])
    return jobs[0].status if jobs else None


def retry_job(queue: str, job_id: str) -> str | None:
    """Queue a failed, cancelled or delayed job again; returns the status it had (None: no such job)."""
    return get_default_store().retry_job(queue, job_id)


def cancel_job(queue: str, job_id: str) -> CancelResult | None:
    """Cancel a job as ``cancel_job`` does (None: no such job)."""
    return api.cancel_in_queue(queue, job_id)


def delete_job(queue: str, job_id: str) -> str | None:
    """Delete a job in any status; returns the status it had (None: no such job)."""
    return get_default_store().delete_job(queue, job_id)


def submit_job(spec: JobSpec) -> tuple[bool, str]:
    """Add a built job (sending ``job_enqueued``); returns (added, status)."""
    [(added, status)] = submit([spec])
    return added, status


# -- workers, beats and schedules ---------------------------------------------------------------
def workers() -> list[dict[str, str]]:
    """Live workers' info (``queues`` comma-separated, ``heartbeat`` in server ms), newest first."""
    return get_default_store().inspect.list_workers()


def beats() -> list[BeatInfo]:
    return cron_api.list_beats()


def crons() -> list[CronInfo]:
    """Every schedule registered in Redis, sorted by name."""
    return cron_api.list_crons()


def defined_schedule_names() -> list[str]:
    """The schedules the code and settings define (which a beat registers when it starts)."""
    return [schedule.name for schedule in collect_schedules()]


def cron_queue(name: str) -> str | None:
    return CronStore(get_default_store()).queue_of(name)


def pause_cron(name: str) -> None:
    cron_api.pause_cron(name)


def resume_cron(name: str) -> None:
    cron_api.resume_cron(name)


def run_cron_now(name: str) -> str:
    return cron_api.run_cron_now(name)
