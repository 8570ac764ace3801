"""A job's history as a timeline, derived from its timestamps and per-attempt errors (no extra writes)."""

from __future__ import annotations

import datetime
import json
from typing import Any

from tempotask_django.job import Job, JobStatus, ms_to_datetime


def pretty_json(value: Any, indent: int | None = 2) -> str:
    """JSON text for display (the template escapes it)."""
    return json.dumps(value, indent=indent, ensure_ascii=False, default=str)


def timeline(job: Job) -> list[dict[str, Any]]:
    """Events oldest first: enqueued, each failed attempt, the last start, the end or what comes next."""
    # Events within one millisecond keep their logical order (a retry without delay starts in the
    # millisecond its previous attempt failed): enqueued, earlier attempts' failures, the last start,
    # the last attempt's failure, the end.
    events: list[tuple[datetime.datetime | None, int, str, str]] = [(job.enqueued_at, 0, "enqueued", "Enqueued")]
    for error in job.errors:
        where = f" on {error['worker']}" if error.get("worker") else ""
        text = f"Attempt {error.get('attempt', '?')} failed{where}: {error.get('type', 'error')}"
        rank = 3 if str(error.get("attempt")) == str(job.attempt) else 1
        events.append((ms_to_datetime(error.get("t")), rank, "failed", text))
    if job.started_at:
        where = f" on {job.worker}" if job.worker else ""
        events.append((job.started_at, 2, "started", f"Attempt {job.attempt} started{where}"))
    if job.status == JobStatus.COMPLETED and job.finished_at:
        events.append((job.finished_at, 4, "completed", "Completed"))
    elif job.status == JobStatus.FAILED and job.finished_at:
        events.append((job.finished_at, 4, "failed", "Failed for good (no attempts left)"))
    elif job.status == JobStatus.CANCELLED and job.finished_at:
        events.append((job.finished_at, 4, "cancelled", "Cancelled"))
    elif job.status == JobStatus.DELAYED and job.run_at:
        events.append((job.run_at, 4, "delayed", "Due (waits until then)"))
    elif job.status == JobStatus.WAITING:
        events.append((None, 4, "waiting", "Waiting for a worker"))
    elif job.status == JobStatus.PROCESSING:
        stopping = " (cancelled: its worker is stopping it)" if job.cancel_requested_at else ""
        events.append((None, 4, "processing", f"Running now{stopping}"))
    far_future = datetime.datetime.max.replace(tzinfo=datetime.UTC)
    events.sort(key=lambda event: (event[0] or far_future, event[1]))
    return [{"at": at, "kind": kind, "text": text} for at, _, kind, text in events]
