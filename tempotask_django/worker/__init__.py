"""The worker process's engine: ``Worker`` claims, runs and records jobs."""

from tempotask_django.worker.core import Worker

__all__ = ["Worker"]
