"""The values the store takes and returns: a job to enqueue, a finished attempt, what a claim gave."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class JobSpec:
    """Everything needed to enqueue one job (already validated and serialized)."""

    id: str
    name: str
    queue: str
    data: str  # JSON text
    priority: int = 0
    max_attempts: int = 1
    retry_delay: float = 0.0
    backoff: str = "fixed"
    parent_id: str = ""
    origin: str = ""
    delay_ms: int = 0
    run_at_ms: int = 0
    timeout: float | None = None  # seconds the handler may run, None: no limit
    # The id came from the caller, so an active job may have it (a random id cannot): checked.
    checked: bool = True
    # Set by the store once the job is added: when, by the Redis clock (ms).
    enqueued_at_ms: int = 0
    # The W3C trace context of the enqueue, JSON (tracing.py), or "" without OpenTelemetry.
    trace: str = ""
    # The task's limits (limits.py): rate 'N/W' (W in ms), at most max_concurrency running, both
    # counted per limit id; empty / 0 when the task has none.
    rate: str = ""
    max_concurrency: int = 0
    limit: str = ""

    def another(self, job_id: str, data: str, limit: str | None = None) -> JobSpec:
        """The same job with another id and data (a bulk enqueue of one task with one set of options),
        and its own limit id when the task's limits are keyed by a data field."""
        return JobSpec(
            job_id,
            self.name,
            self.queue,
            data,
            self.priority,
            self.max_attempts,
            self.retry_delay,
            self.backoff,
            self.parent_id,
            self.origin,
            self.delay_ms,
            self.run_at_ms,
            self.timeout,
            checked=False,
            trace=self.trace,
            rate=self.rate,
            max_concurrency=self.max_concurrency,
            limit=self.limit if limit is None else limit,
        )

    def job_args(self) -> list[Any]:
        """The record's values, in the order lib.lua's JOB_FIELDS names them."""
        return [
            self.name,
            self.queue,
            self.data,
            self.max_attempts,
            self.retry_delay,
            self.backoff,
            self.parent_id,
            self.origin,
            self.trace,
            self.rate,
            self.max_concurrency or "",
            self.limit,
            "" if self.timeout is None else self.timeout,
        ]

    def script_args(self) -> list[Any]:
        """enqueue.lua's arguments for this job: id, checked, priority, delay, due, the record's values."""
        return [self.id, 1 if self.checked else 0, self.priority, self.delay_ms, self.run_at_ms, *self.job_args()]


@dataclass
class ClaimResult:
    """What one claim call gave a worker."""

    jobs: list[dict[str, str]]
    next_due_ms: int  # ms until the next delayed job is due, -1 when none
    wake_id: str  # newest doorbell entry; block on entries after it
    paused: bool


@dataclass
class ReclaimResult:
    jobs: list[dict[str, str]]
    cursor: str
    poisoned: int
    alone: bool = False  # the one job returned is a suspect: run nothing else beside it
    suspects: int = 0  # suspects left for another worker
    held: str = ""  # entry id of the suspect the worker holds in this queue after the call, "" when none


@dataclass
class SweepResult:
    """What one sweep call did: jobs whose stream entry was lost, sent back to waiting or failed."""

    offset: int  # where the next call starts; 0 when the pass is complete
    requeued: int
    failed: int  # lost too many runs in a row (MAX_DELIVERIES)


@dataclass(slots=True)
class Finish:
    """One finished attempt, to be recorded (possibly in a batch with others)."""

    queue: str
    entry_id: str
    job_id: str
    succeeded: bool
    payload: str  # result JSON on success, error JSON on failure
    retry_delay_ms: int = -1  # failures only: -1 fails for good
    # Failures only: False when no registered task ran it (a name another program made up), so
    # its failure adds no per-task metrics field.
    known_task: bool = True
    cancelled: bool = False  # failures only: the job was cancelled, it ends cancelled (never retried)


@dataclass
class CancelResult:
    """What ``cancel_job`` did: the status the job had, and whether it ended cancelled at once
    (waiting, delayed) or its worker was asked to stop it (processing)."""

    previous: str
    ended: bool  # now cancelled
    requested: bool  # processing: its worker stops it


@dataclass
class FinishOutcome:
    accepted: bool
    status: str = ""
    reason: str = ""
