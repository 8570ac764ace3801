"""What a worker logs about a failed attempt: enough for Sentry, ELK and friends to show an error
with its traceback, and to filter by job, task, queue and attempt."""

from __future__ import annotations

import logging

from tests.helpers import drain
from tests.testapp import tasks


def failure_records(caplog) -> list[logging.LogRecord]:
    return [record for record in caplog.records if "always_fails failed" in record.getMessage()]


def test_a_failed_attempt_is_logged_with_its_exception_and_the_jobs_fields(store, caplog):
    with caplog.at_level(logging.WARNING, logger="tempotask"):
        job_id = tasks.always_fails.enqueue({}, queue="default")
        drain()
    retried, failed = failure_records(caplog)
    assert (retried.levelno, failed.levelno) == (logging.WARNING, logging.ERROR)
    for attempt, record in enumerate((retried, failed), start=1):
        assert record.exc_info is not None
        exc_type, exc, traceback = record.exc_info
        assert exc_type is ValueError and str(exc) == "this task always fails" and traceback is not None
        assert (record.job_id, record.task, record.queue, record.attempt) == (
            job_id,
            "always_fails",
            "default",
            attempt,
        )
    assert "Traceback (most recent call last)" in caplog.text
