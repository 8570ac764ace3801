"""Tasks of the immediate mode and testing helper tests (imported by those tests only)."""

import threading

from django.contrib.auth.models import User

from tempotask_django import get_job, task

# Each run of these handlers, in order: (task name, job id, what it saw).
RUNS: list[tuple[str, str, object]] = []


@task
def counts_users(job, ctx):
    """Sees the caller's database: returns the usernames, and the thread it ran on."""
    RUNS.append(("counts_users", job.id, threading.get_ident()))
    return {"users": sorted(User.objects.values_list("username", flat=True)), "thread": threading.get_ident()}


@task
def enqueues_itself(job, ctx):
    """Enqueues a job with its own id while it runs: deduplicated, as the job is active."""
    RUNS.append(("enqueues_itself", job.id, job.status))
    return ctx.add_job("enqueues_itself", {}, job_id=job.id)


@task
def spawns_elsewhere(job, ctx):
    """Adds a child in another queue, then logs; the child records what it saw of its parent."""
    child_id = ctx.add_job("child_of", {"parent": job.id}, queue="elsewhere")
    RUNS.append(("spawns_elsewhere", job.id, child_id))
    job.log("child added")
    return child_id


@task
def child_of(job, ctx):
    parent = get_job(job.data["parent"])
    RUNS.append(("child_of", job.id, parent.status))
    return parent.status


@task(attempts=3, retry_delay=600)
def fails_slowly(job, ctx):
    """Fails twice with a 10-minute retry delay, then succeeds."""
    RUNS.append(("fails_slowly", job.id, job.attempt))
    if job.attempt < 3:
        raise RuntimeError(f"attempt {job.attempt}")
    return job.attempt
