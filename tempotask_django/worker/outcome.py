"""How an attempt ended: the runner describes each attempt as an ``Outcome``, and the finisher
turns it into what Redis stores. The error record itself is built by ``job.error_record``.
"""

from __future__ import annotations

import json
import queue
from dataclasses import dataclass
from typing import Any

from tempotask_django.decorators import Task
from tempotask_django.job import Job
from tempotask_django.worker.running import RunningJob


@dataclass
class Outcome:
    """How one attempt ended."""

    job: Job
    succeeded: bool
    duration: float
    result: Any = None
    error: BaseException | None = None
    error_info: dict[str, Any] | None = None
    permanent: bool = False  # no retry whatever the attempts left
    task: Task | None = None  # None when the job's task could not be found
    cancelled: bool = False  # the job was cancelled: it ends cancelled, never retried


class RunWaiting:
    """The finisher's inbox item of a worker that runs its jobs on the finisher's thread (one job
    at a time): a job waits to run there."""


RUN_WAITING = RunWaiting()

# The finisher's inbox: each started job's (job, outcome), RUN_WAITING (a job to run, inline
# only), and None to stop the finisher.
FinishedJobs = queue.SimpleQueue[tuple[RunningJob, Outcome] | RunWaiting | None]


def error_json(record: dict[str, Any] | None) -> str:
    """An attempt's error record as the fail script takes it: without its time, which the script
    adds from the Redis clock (the worker host's clock may be off)."""
    return json.dumps({key: value for key, value in (record or {}).items() if key != "t"}, default=str)


def not_retried_json(outcome: Outcome, why: str) -> str:
    """The attempt's error record as stored, its message saying why the job fails without a retry."""
    info = dict(outcome.error_info or {})
    info["message"] = f"{info.get('message', '')} (not retried: {why})".lstrip()
    return error_json(info)
