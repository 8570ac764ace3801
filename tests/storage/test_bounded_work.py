"""Every script does bounded work per call, and every per-job list has a cap (settings)."""

from __future__ import annotations

import json

import pytest

from tempotask_django.storage.connection import get_default_store
from tempotask_django.storage.records import Finish, JobSpec
from tempotask_django.storage.store import HISTORY_TRIM_SLICE
from tests.helpers import finish

pytestmark = pytest.mark.redis

Q = "default"


def spec(job_id: str, **options) -> JobSpec:
    return JobSpec(id=job_id, name="add", queue=Q, data=json.dumps({"a": 1}), **options)


def store_with(settings, **values):
    settings.TEMPOTASK = {**settings.TEMPOTASK, **values}
    return get_default_store()


def complete_all(store) -> None:
    jobs = store.claim(Q, "w1", 1000).jobs
    finish(store, "w1", [Finish(Q, job["entry"], job["id"], True, "1") for job in jobs])


def test_a_lowered_history_is_trimmed_in_slices(store, settings):
    store = store_with(settings, MAX_JOBS_PER_STATUS=100_000)
    for start in range(0, 1000, 500):
        store.enqueue_many([spec(f"old-{n}") for n in range(start, start + 500)])
        complete_all(store)
    assert store.inspect.count_jobs(Q, "completed") == 1000
    store = store_with(settings, MAX_JOBS_PER_STATUS=10)
    store.enqueue(spec("new"))
    complete_all(store)
    # One completion deletes one slice, not 991 jobs: the rest goes on later calls.
    assert store.inspect.count_jobs(Q, "completed") == 1001 - HISTORY_TRIM_SLICE
    assert store.inspect.list_job_ids(Q, "completed", 0, 1) == ["new"]
    assert not store.client.exists(store.keys(Q).job("old-0"))
    assert store.client.exists(store.keys(Q).job(f"old-{HISTORY_TRIM_SLICE}"))


def test_the_housekeeping_sweep_trims_an_idle_queue_to_its_history(store, settings):
    store = store_with(settings, MAX_JOBS_PER_STATUS=100_000)
    store.enqueue_many([spec(f"old-{n}") for n in range(500)])
    complete_all(store)
    store = store_with(settings, MAX_JOBS_PER_STATUS=10)
    calls = 0
    while store.inspect.count_jobs(Q, "completed") > 10:
        store.sweep_lost_entries(Q)
        calls += 1
        assert calls <= 500 // HISTORY_TRIM_SLICE + 1
    assert store.inspect.count_jobs(Q, "completed") == 10


def test_log_lines_are_capped_in_number_and_size(store, settings):
    store = store_with(settings, MAX_LOG_LINES_PER_JOB=5, MAX_LOG_LINE_BYTES=200)
    store.enqueue(spec("a"))
    for n in range(8):
        assert store.append_log(Q, "a", json.dumps(f"line {n}"))
    assert store.append_log(Q, "a", json.dumps("x" * 100_000))
    logs = store.inspect.get_job(Q, "a").logs
    assert [line["message"] for line in logs[:4]] == ["line 4", "line 5", "line 6", "line 7"]
    assert all(len(line) <= 300 for line in store.client.lrange(store.keys(Q).logs("a"), 0, -1))
    assert logs[-1]["message"].startswith("xxxx") and "[cut: 100,002 bytes" in logs[-1]["message"]


def test_error_records_are_capped_per_job_keeping_the_newest(store, settings):
    store = store_with(settings, MAX_ERRORS_PER_JOB=3)
    store.enqueue(spec("j", max_attempts=100))
    for attempt in range(1, 8):
        (job,) = store.claim(Q, "w1", 1).jobs
        error = json.dumps({"attempt": attempt, "type": "ValueError", "message": "x" * 1000, "traceback": "tb"})
        assert finish(store, "w1", [Finish(Q, job["entry"], "j", False, error, 0)])[0].accepted
    errors = store.inspect.get_job(Q, "j").errors
    assert [error["attempt"] for error in errors] == [5, 6, 7]


def test_a_full_history_is_trimmed_by_one_call_per_finish_batch(store, settings, monkeypatch):
    store = store_with(settings, MAX_JOBS_PER_STATUS=20)
    asked: list[str] = []
    declaring = store.scripts._declaring

    def counting(call, wanted):
        asked.append(call[0])
        return declaring(call, wanted)

    monkeypatch.setattr(store.scripts, "_declaring", counting)
    for batch in range(12):
        if batch == 3:  # the history is full and the trim has named the jobs it deletes next
            asked.clear()
        store.enqueue_many([spec(f"b{batch}-{n}") for n in range(7)])
        complete_all(store)
    # Each finish batch's trim knows the keys of the oldest jobs: no call is sent twice.
    assert "trim" not in asked
    assert store.inspect.count_jobs(Q, "completed") == 20
    assert not store.client.exists(store.keys(Q).job("b8-0"))
    assert not store.client.exists(store.keys(Q).logs("b8-0"))
    assert store.client.exists(store.keys(Q).job("b11-6"))


def test_a_finish_batch_larger_than_the_jobs_named_ahead_still_leaves_the_history_at_its_size(store, settings):
    store = store_with(settings, MAX_JOBS_PER_STATUS=5)
    store.enqueue_many([spec(f"first-{n}") for n in range(4)])
    complete_all(store)
    store.enqueue_many([spec(f"second-{n}") for n in range(8)])
    complete_all(store)  # 12 completed: the trim knew the 4 first, not the 3 oldest of the second batch
    assert store.inspect.count_jobs(Q, "completed") == 5
    assert not store.client.exists(store.keys(Q).job("first-0"))
