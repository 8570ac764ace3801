"""The worker process's engine: ``Worker`` claims, runs and records jobs."""

from tempotask_django.worker.core import Worker
from tempotask_django.worker.support import REDIS_ERRORS, ErrorThrottle

__all__ = ["REDIS_ERRORS", "ErrorThrottle", "Worker"]
