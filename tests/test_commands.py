"""``manage.py runworkers`` as real processes: signals, crashes, several processes, memory."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tempotask_django import JobStatus, get_job
from tempotask_django.storage.connection import get_default_store
from tests.helpers import wait_until
from tests.testapp import tasks

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def test_burst_processes_everything_and_exits_zero(workers, ledger):
    ids = [tasks.add.enqueue({"a": n, "b": n}) for n in range(20)]
    process = workers.start("--burst", "--concurrency", "4")
    assert process.wait(timeout=30) == 0, workers.output(process)
    assert [get_job(job_id).result for job_id in ids] == [2 * n for n in range(20)]


def test_sigterm_lets_the_running_job_finish_then_exits_zero(workers, ledger):
    job_id = tasks.slow.enqueue({"seconds": 1.5})
    process = workers.start("--queues", "slow")
    wait_until(lambda: ledger.entries("start"), message="the job to start")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0
    assert get_job(job_id).status == JobStatus.COMPLETED
    assert len(ledger.entries("end")) == 1
    assert "stopping" in workers.output(process)


def test_a_stopping_worker_keeps_renewing_the_lease_of_its_running_job(workers, ledger):
    """SIGTERM stops the claiming, not the lease renewal: a live worker beside it must not take the
    running job over (and run it twice) while the stopping worker waits for it to finish."""
    overrides = {"STALLED_TIMEOUT": 1, "SHUTDOWN_TIMEOUT": 15}
    store = get_default_store()
    job_id = tasks.slow.enqueue({"seconds": 4})
    first = workers.start("--queues", "slow", overrides=overrides)
    wait_until(lambda: ledger.entries("start"), message="the job to start")
    second = workers.start("--queues", "slow", overrides=overrides)  # live, reclaiming every 0.5 s
    wait_until(lambda: len(store.list_workers()) == 2, message="the second worker to be up")
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=20) == 0, workers.output(first)
    job = get_job(job_id)
    assert job.status == JobStatus.COMPLETED, (job, workers.output(first), workers.output(second))
    assert job.attempt == 1 and job.errors == []
    assert job.worker is not None and job.worker.split(":")[1] == str(first.pid)
    assert [entry["pid"] for entry in ledger.entries("start")] == [first.pid]  # ran once, by the first
    assert "result discarded" not in workers.output(first)
    assert second.poll() is None


def test_job_of_a_killed_worker_is_finished_by_another(workers, ledger):
    overrides = {"STALLED_TIMEOUT": 2}
    job_id = tasks.slow.enqueue({"seconds": 0.5})
    doomed = workers.start("--queues", "slow", overrides=overrides)
    wait_until(lambda: ledger.entries("start"), message="the job to start")
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=10)
    survivor = workers.start("--queues", "slow", overrides=overrides)
    wait_until(lambda: get_job(job_id).status == JobStatus.COMPLETED, timeout=20, message="the job to complete")
    job = get_job(job_id)
    assert job.attempt == 2 and job.errors[0]["type"] == "Stalled"
    starts = ledger.entries("start")
    assert len(starts) == 2 and starts[0]["pid"] == doomed.pid and starts[1]["pid"] != doomed.pid
    assert survivor.poll() is None


def test_a_long_job_of_a_live_worker_is_never_taken_over(workers, ledger):
    """Running three times longer than STALLED_TIMEOUT is fine while the worker renews its lease."""
    overrides = {"STALLED_TIMEOUT": 1}
    job_id = tasks.slow.enqueue({"seconds": 3.5})
    workers.start("--queues", "slow", overrides=overrides)
    wait_until(lambda: ledger.entries("start"), message="the job to start")
    workers.start("--queues", "slow", overrides=overrides)  # idle, reclaiming every 0.5 s
    wait_until(lambda: get_job(job_id).status == JobStatus.COMPLETED, timeout=20, message="the job to complete")
    assert len(ledger.entries("start")) == 1
    assert get_job(job_id).errors == []


def test_several_processes_share_the_queue(workers, ledger):
    for n in range(40):
        tasks.slow.enqueue({"seconds": 0.05, "n": n})
    process = workers.start("--queues", "slow", "--processes", "2", "--burst")
    assert process.wait(timeout=60) == 0
    pids = {entry["pid"] for entry in ledger.entries("end")}
    assert len(ledger.entries("end")) == 40
    assert len(pids) == 2 and process.pid not in pids


def test_poison_pill_is_failed_after_max_deliveries(workers, ledger):
    job_id = tasks.kills_worker.enqueue()
    good = tasks.add.enqueue({"a": 1, "b": 1})
    process = workers.start("--processes", "2", overrides={"STALLED_TIMEOUT": 1, "MAX_DELIVERIES": 2})
    wait_until(lambda: get_job(job_id).status == JobStatus.FAILED, timeout=40, message="the pill to fail")
    job = get_job(job_id)
    assert job.errors[-1]["type"] == "PoisonPill"
    assert len(ledger.entries("ran")) >= 3  # 1 delivery + 2 redeliveries of the pill (+ the good job)
    assert get_job(good).status == JobStatus.COMPLETED
    assert process.poll() is None  # the supervisor replaced every killed child
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0


def _our_memory(client) -> tuple[int, int]:
    keys = list(client.scan_iter(count=1000))
    return len(keys), sum(client.memory_usage(key) or 0 for key in keys)


def test_memory_is_flat_with_max_jobs_per_status(workers, redis_client):
    overrides = {"MAX_JOBS_PER_STATUS": 300}
    store = get_default_store()

    def run(count: int) -> None:
        for start in range(0, count, 1000):
            tasks.noop.enqueue_many([None] * min(1000, count - start))
        process = workers.start("--burst", "--concurrency", "8", overrides=overrides, log_level="WARNING")
        assert process.wait(timeout=180) == 0

    run(2_000)
    keys_small, bytes_small = _our_memory(redis_client)
    run(18_000)
    keys_large, bytes_large = _our_memory(redis_client)
    assert store.queue_stats("default").completed == 300
    assert keys_large <= keys_small + 2  # a minute-counter key may have been added
    assert bytes_large <= bytes_small * 1.05 + 4096, (bytes_small, bytes_large)


def test_idle_worker_sleeps_in_a_blocking_read(workers):
    process = workers.start()
    time.sleep(1.0)
    before = os.times()
    cpu_start = _cpu_seconds(process.pid)
    time.sleep(3.0)
    used = _cpu_seconds(process.pid) - cpu_start
    assert used < 0.3, f"idle worker used {used:.2f}s CPU in 3s"
    assert before is not None


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
