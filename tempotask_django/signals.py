"""Django signals for the job lifecycle.

The sender is the job's Task (None for a job whose task is not registered), so a receiver can
listen to one task: ``job_completed.connect(on_sent, sender=send_email)``. Receivers get keyword
arguments:
- ``job_enqueued``: job_id, name, queue, status ("waiting" or "delayed")
- ``job_started``: job (a Job)
- ``job_completed``: job, result, duration (seconds)
- ``job_failed``: job, error (the exception), will_retry (bool), duration
- ``job_cancelled``: job, error (the JobCancelled), duration (None when it never started), sent by
  the worker that stopped a running job, or by ``cancel_job`` for a waiting or delayed one

A receiver that raises is logged and never stops a worker or a producer.
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import Signal

logger = logging.getLogger("tempotask")

job_enqueued = Signal()
job_started = Signal()
job_completed = Signal()
job_failed = Signal()
job_cancelled = Signal()


def send(signal: Signal, sender: Any = None, **kwargs: Any) -> None:
    """Send ``signal`` (ours, or one of Django's task signals) robustly: a failing receiver is
    logged with its traceback, never raised into the worker, the producer or the job."""
    if not signal.receivers or not signal.has_listeners(sender):  # the first test is the cheap one
        return
    for receiver, response in signal.send_robust(sender=sender, **kwargs):
        if isinstance(response, Exception):
            logger.error(
                "signal receiver %r failed: %s",
                receiver,
                response,
                exc_info=(type(response), response, response.__traceback__),
            )
