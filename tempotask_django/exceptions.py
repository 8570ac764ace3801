"""One error family: everything tempotask raises on purpose derives from TempotaskError."""

from django.core.exceptions import ImproperlyConfigured


class TempotaskError(Exception):
    """Root of every error raised by tempotask_django."""


class ConfigurationError(TempotaskError, ImproperlyConfigured):
    """The TEMPOTASK setting or a task definition is wrong."""


class TaskNotRegistered(TempotaskError, LookupError):
    """No task with that name is registered (checked at enqueue time)."""


class JobNotFound(TempotaskError, LookupError):
    """No job with that id exists (it may have been trimmed from history)."""


class AmbiguousJob(TempotaskError, LookupError):
    """Jobs with that id exist in several queues (an id is unique within its queue only): name the queue."""


class CronNotFound(TempotaskError, LookupError):
    """No cron schedule with that name is registered in Redis (a beat registers them when it starts)."""


class InvalidJobState(TempotaskError):
    """The job is not in a state that allows the requested operation."""


class WorkerLost(TempotaskError):
    """An attempt ended because its worker stopped renewing its lease (it died or hung), or because
    the lease itself was lost with the job's stream entry (deleted while pending, or lost by Redis).

    Never raised: it names such attempts in the errors of a Django ``TaskResult``.
    """


class InvalidSchedule(TempotaskError, ValueError):
    """A runtime cron schedule cannot be saved as given (bad expression, timezone, task, data or
    options, a name already taken, or a schedule the code defines); nothing was written."""


class JobTimeout(TempotaskError):
    """Raised inside a handler that runs past its time limit (``timeout``): a failed attempt, retried
    as any other. A handler that still runs a grace period later is abandoned: its worker process
    restarts (see docs/job-control.md)."""


class JobCancelled(TempotaskError):
    """Raised inside a handler whose job was cancelled (``cancel_job``), and by ``job.check_cancelled()``.
    The job ends ``cancelled``, never retried."""


class NotReplicated(TempotaskError):
    """An enqueue was written on the master, but fewer replicas than ENQUEUE_REPLICAS acknowledged it
    within ENQUEUE_REPLICAS_TIMEOUT: a failover now could lose it (see docs/redis-modes.md).

    The jobs are queued on the master all the same. ``job_ids``: the jobs of the write that fell
    short; ``acknowledged``: the fewest replicas that acknowledged one of them; ``required``:
    ENQUEUE_REPLICAS. Enqueueing again with the same ``job_id`` is safe: an active job with that id
    is kept, not doubled.
    """

    def __init__(self, job_ids: list[str], acknowledged: int, required: int, timeout: float) -> None:
        self.job_ids = job_ids
        self.acknowledged = acknowledged
        self.required = required
        shown = ", ".join(job_ids[:5]) + (f" and {len(job_ids) - 5} more" if len(job_ids) > 5 else "")
        super().__init__(
            f"only {acknowledged} of the {required} replicas that ENQUEUE_REPLICAS asks for acknowledged "
            f"job(s) {shown} within {timeout:g}s: they are queued on the master, but a failover now could "
            f"lose them (short by {required - acknowledged} replica(s))"
        )
