"""Job ids may contain ':': no id can name another job's keys (records, logs, errors, children)."""

from __future__ import annotations

import pytest

from tempotask_django import api
from tempotask_django.job import JobStatus
from tests.helpers import drain

pytestmark = pytest.mark.redis

Q = "default"


def statuses(store, job_id: str) -> list[str]:
    keys = store.keys(Q)
    return [status for status in JobStatus if store.client.zscore(keys.status(status), job_id) is not None]


def test_a_job_whose_id_names_another_jobs_errors_key_leaves_both_jobs_intact(store, ledger):
    api.add_job("noop", {}, job_id="a:errors", delay=3600, on_commit=False)
    api.add_job("always_fails", {}, job_id="a", on_commit=False)
    drain([Q])

    assert statuses(store, "a") == ["failed"]
    assert statuses(store, "a:errors") == ["delayed"]
    failed = api.get_job("a", Q)
    assert failed is not None and failed.status == JobStatus.FAILED and len(failed.errors) == 2
    waiting = api.get_job("a:errors", Q)
    assert waiting is not None and waiting.name == "noop" and waiting.errors == []
    api.delete_job("a", Q)
    assert api.add_job("always_fails", {}, job_id="a", delay=3600, on_commit=False) == "a"
    assert statuses(store, "a:errors") == ["delayed"]


def test_a_job_named_like_another_jobs_logs_key_is_read_apart_from_those_logs(store, ledger):
    api.add_job("noop", {}, job_id="b:logs", delay=3600, on_commit=False)
    api.add_job("echoes", {"text": "hi"}, job_id="b", on_commit=False)
    drain([Q])

    logged, named = api.get_job("b", Q), api.get_job("b:logs", Q)  # what the admin's job page reads
    assert logged is not None and [line["message"] for line in logged.logs] == ["hi", {"text": "hi"}]
    assert named is not None and (named.name, named.status, named.logs) == ("noop", JobStatus.DELAYED, [])
    assert api.delete_job("b", Q) == JobStatus.COMPLETED
    assert statuses(store, "b:logs") == ["delayed"]
