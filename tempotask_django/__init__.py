"""Background jobs and cron for Django on Redis Streams.

Public API (everything else is internal)::

    from tempotask_django import task, add_job, get_job, list_crons, pause_cron, JobNotFound

Nothing here reads settings or touches Redis at import time.
"""

from tempotask_django.api import (
    add_job,
    add_jobs,
    cancel_job,
    delete_job,
    get_job,
    list_jobs,
    queue_stats,
    retry_job,
)
from tempotask_django.cron import (
    add_cron,
    delete_cron,
    list_beats,
    list_crons,
    pause_cron,
    resume_cron,
    run_cron_now,
    update_cron,
)
from tempotask_django.decorators import Task, task
from tempotask_django.exceptions import (
    AmbiguousJob,
    ConfigurationError,
    CronNotFound,
    InvalidJobState,
    InvalidSchedule,
    JobCancelled,
    JobNotFound,
    JobTimeout,
    NotReplicated,
    TaskNotRegistered,
    TempotaskError,
    WorkerLost,
)
from tempotask_django.job import Job, JobStatus
from tempotask_django.storage.crons import BeatInfo, CronInfo
from tempotask_django.storage.inspect import QueueStats

__version__ = "0.1.0"

__all__ = [
    "AmbiguousJob",
    "BeatInfo",
    "ConfigurationError",
    "CronInfo",
    "CronNotFound",
    "InvalidJobState",
    "InvalidSchedule",
    "Job",
    "JobCancelled",
    "JobNotFound",
    "JobStatus",
    "JobTimeout",
    "NotReplicated",
    "QueueStats",
    "Task",
    "TaskNotRegistered",
    "TempotaskError",
    "WorkerLost",
    "__version__",
    "add_cron",
    "add_job",
    "add_jobs",
    "cancel_job",
    "delete_cron",
    "delete_job",
    "get_job",
    "list_beats",
    "list_crons",
    "list_jobs",
    "pause_cron",
    "queue_stats",
    "resume_cron",
    "retry_job",
    "run_cron_now",
    "task",
    "update_cron",
]
