"""The Job record and its statuses, and their mapping to and from a Redis hash.

A job is stored as one hash of strings. ``Job.from_fields`` reads any subset of the fields, so
records written by an older version (or half-written foreign data) still parse with defaults.
"""

from __future__ import annotations

import datetime
import enum
import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tempotask_django import serialization
from tempotask_django.exceptions import JobCancelled

# Longest error message and traceback kept in an error record, characters (the traceback keeps its end).
MAX_ERROR_MESSAGE = 10_000
MAX_TRACEBACK = 50_000


class JobStatus(enum.StrEnum):
    """Where a job is in its life. Every job is in exactly one of these.

    The order is the admin's (tabs) and stats.lua's (counts): waiting, delayed, processing, then
    the history (completed, failed, cancelled). Each status is also the name of the queue's set of its jobs
    (storage/keys.py).
    """

    WAITING = "waiting"
    DELAYED = "delayed"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @classmethod
    def parse(cls, value: object) -> JobStatus | None:
        """The status named ``value``, or None for anything else (a damaged record, a bad URL)."""
        return _STATUSES.get(value) if isinstance(value, str) else None

    @classmethod
    def active(cls) -> tuple[JobStatus, ...]:
        """Statuses in which a job id deduplicates a new enqueue."""
        return (cls.WAITING, cls.DELAYED, cls.PROCESSING)

    @property
    def label(self) -> str:
        """The status as a title: "Waiting"."""
        return self.value.capitalize()

    @property
    def is_history(self) -> bool:
        """Finished for good: kept (MAX_JOBS_PER_STATUS of each) until trimmed or purged."""
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


_STATUSES: dict[str, JobStatus] = {status.value: status for status in JobStatus}


def ms_to_datetime(value: str | int | None) -> datetime.datetime | None:
    """A timestamp field (epoch ms) as a datetime; None when missing or not a representable time."""
    if value in (None, "", b""):
        return None
    try:
        return datetime.datetime.fromtimestamp(int(value) / 1000, tz=datetime.UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _decoded(text: str | None) -> Any:
    """JSON text decoded, or the text itself when it is not JSON (a record is shown as it is)."""
    if not text:
        return None
    try:
        return serialization.decode(text)
    except (ValueError, RecursionError):  # not JSON, or nested too deep to decode
        return text


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _float(value: Any, default: float = 0.0) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) else default


@dataclass
class Job:
    """A job as a handler sees it (``job``) and as ``get_job()`` returns it.

    ``attempt`` is 1-based while the handler runs. ``log(message)`` appends a timestamped line
    (a string or a JSON-serializable dict) to the job's log, shown in the admin;
    ``set_progress(percent, info)`` reports how far it has got (``progress``).
    """

    id: str
    name: str
    queue: str
    data: Any = None
    status: JobStatus = JobStatus.WAITING
    attempt: int = 0
    max_attempts: int = 1
    priority: int = 0
    parent_id: str | None = None
    enqueued_at: datetime.datetime | None = None
    started_at: datetime.datetime | None = None
    finished_at: datetime.datetime | None = None
    run_at: datetime.datetime | None = None
    retry_delay: float = 0.0
    backoff: str = "fixed"
    result: Any = None
    worker: str | None = None
    origin: str | None = None
    entry_id: str | None = None
    timeout: float | None = None
    cancel_requested_at: datetime.datetime | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)
    # The latest progress a handler reported: {"percent": 0-100, "info": JSON or None, "t": ms (Redis
    # clock, once stored)}; None when it never did.
    progress: dict[str, Any] | None = None
    _log_sink: Callable[[Job, Any], None] | None = field(default=None, repr=False, compare=False)
    _progress_sink: Callable[[Job, dict[str, Any]], None] | None = field(default=None, repr=False, compare=False)
    # While a worker runs the job: its JobControl (worker/control.py), which hears of a cancel.
    _control: Any = field(default=None, repr=False, compare=False)

    @property
    def cancel_requested(self) -> bool:
        """True once the job was cancelled (``cancel_job``). While the job runs, its worker learns of
        it within a second; a handler may look at it between steps and stop cleanly."""
        if self._control is not None and self._control.cancel_requested:
            return True
        return self.cancel_requested_at is not None

    def check_cancelled(self) -> None:
        """Raise JobCancelled if the job was cancelled: a cheap check (no round trip) for a loop::

        for row in rows:
            job.check_cancelled()
            handle(row)
        """
        if self.cancel_requested:
            raise JobCancelled(f"job {self.id} was cancelled")

    def log(self, message: str | dict[str, Any]) -> None:
        """Append ``message`` to this job's log (kept with the job, shown in the admin)."""
        if self._log_sink is None:
            self.logs.append({"message": message})
            return
        self._log_sink(self, message)

    # ``job.logger(...)`` is the same call.
    logger = log

    def set_progress(self, percent: float, info: Any = None) -> None:
        """Report how far this job has got: ``percent`` from 0 to 100, and ``info`` (any JSON value,
        e.g. ``{"rows": 1200}``), stored with the job, returned by ``get_job`` as ``progress`` and
        shown live in the admin.

        Cheap to call in a loop: at most a few writes a second per job reach Redis (one round trip
        each); the latest value wins, and the last one is written before the job's outcome.

        Example: ``job.set_progress(40, {"step": "resizing"})``
        """
        record = progress_record(percent, info)
        self.progress = record
        if self._progress_sink is not None:
            self._progress_sink(self, record)

    @property
    def duration(self) -> float | None:
        """Seconds between start and finish of the last attempt, when both are known."""
        if self.started_at and self.finished_at and self.finished_at >= self.started_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None

    @classmethod
    def from_fields(cls, fields: dict[str, str], *, decode_data: bool = True) -> Job:
        """Build a Job from a Redis hash; tolerant of missing or malformed fields.

        With ``decode_data=False`` the data stays unset, for a caller that decodes it (and reports
        bad JSON) itself.
        """
        status = JobStatus.parse(fields.get("status", "waiting")) or JobStatus.FAILED
        data = _decoded(fields.get("data")) if decode_data else None
        result = _decoded(fields.get("result"))
        return cls(
            id=fields.get("id", ""),
            name=fields.get("name", ""),
            queue=fields.get("queue", ""),
            data=data,
            status=status,
            attempt=_int(fields.get("attempt")),
            max_attempts=_int(fields.get("max_attempts"), 1),
            priority=_int(fields.get("priority")),
            parent_id=fields.get("parent_id") or None,
            enqueued_at=ms_to_datetime(fields.get("enqueued_at")),
            started_at=ms_to_datetime(fields.get("started_at")),
            finished_at=ms_to_datetime(fields.get("finished_at")),
            run_at=ms_to_datetime(fields.get("run_at")),
            retry_delay=_float(fields.get("retry_delay")),
            backoff=fields.get("backoff") or "fixed",
            result=result,
            worker=fields.get("worker") or None,
            origin=fields.get("origin") or None,
            entry_id=fields.get("entry") or None,
            progress=_progress(fields.get("progress")),
            timeout=_float(fields.get("timeout")) or None,
            cancel_requested_at=ms_to_datetime(fields.get("cancel_requested")),
        )


# Largest ``info`` of a progress report, bytes of JSON: progress is rewritten often, keep it small.
MAX_PROGRESS_INFO_BYTES = 4096


def progress_record(percent: Any, info: Any = None) -> dict[str, Any]:
    """The progress ``set_progress`` stores; a ValueError or TypeError for a bad percent or info."""
    if isinstance(percent, bool) or not isinstance(percent, int | float) or not 0 <= percent <= 100:
        raise ValueError(f"set_progress: percent must be a number from 0 to 100, not {percent!r}")
    info = serialization.normalize(info, "info")
    if len(serialization.dumps(info).encode()) > MAX_PROGRESS_INFO_BYTES:
        raise ValueError(f"set_progress: info must be at most {MAX_PROGRESS_INFO_BYTES} bytes of JSON")
    return {"percent": percent, "info": info}


def _progress(text: str | None) -> dict[str, Any] | None:
    value = _decoded(text)
    return value if isinstance(value, dict) and "percent" in value else None


def error_record(exc: BaseException, attempt: int, worker: str) -> dict[str, Any]:
    """The record of attempt ``attempt`` failing with ``exc`` on ``worker``, as ``Job.errors`` holds it.

    Every failed attempt's record is built here, whoever builds it (the runner, the worker for a
    record it could not even run, the finisher for one it could not store, the Django tasks
    bridge), so the admin and ``Job.errors`` always read the same fields.
    """
    kind = type(exc)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    return {
        "attempt": attempt,
        "type": name,
        "message": str(exc)[:MAX_ERROR_MESSAGE],
        "traceback": "".join(traceback.format_exception(exc))[-MAX_TRACEBACK:],
        "t": int(time.time() * 1000),
        "worker": worker,
    }
