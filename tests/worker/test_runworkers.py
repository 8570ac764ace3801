"""``manage.py runworkers`` as real processes: signals, crashes, several processes, memory."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tempotask_django import JobStatus, add_job, get_job
from tempotask_django.storage.connection import get_default_store
from tests.conftest import _test_url
from tests.helpers import CommandLog, wait_until
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
    wait_until(lambda: len(store.inspect.list_workers()) == 2, message="the second worker to be up")
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


def test_per_queue_concurrency_and_history_size_in_a_real_worker(workers, ledger, store):
    overrides = {"CONCURRENCY": 6, "QUEUES": {"slow": {"CONCURRENCY": 2, "MAX_JOBS_PER_STATUS": 5}}}
    slow = [tasks.slow.enqueue({"seconds": 0.3, "n": n}) for n in range(8)]
    failing = [add_job("always_fails", queue="slow") for _ in range(7)]
    others = [tasks.add.enqueue({"a": n, "b": 0}) for n in range(8)]
    process = workers.start("--queues", "slow", "default", "--burst", overrides=overrides)
    assert process.wait(timeout=60) == 0, workers.output(process)
    events = sorted(
        (entry["t"], +1 if entry["event"] == "start" else -1)
        for entry in ledger.entries()
        if entry["event"] in ("start", "end")
    )
    running = [sum(step for _, step in events[: i + 1]) for i in range(len(events))]
    assert len(events) == 16 and max(running) == 2  # two at once, never more, although 6 threads idled
    stats = store.inspect.queue_stats("slow")
    assert (stats.completed, stats.failed) == (5, 5)
    assert set(store.inspect.list_job_ids("slow", "completed", 0, 100)) <= set(slow)
    assert set(store.inspect.list_job_ids("slow", "failed", 0, 100)) <= set(failing)
    kept = [job_id for job_id in slow + failing if store.client.exists(store.keys("slow").job(job_id))]
    assert len(kept) == 10  # the trimmed ones are gone with their records
    assert store.inspect.queue_stats("default").completed == len(others)  # other queues keep the global size


def test_context_may_be_a_plain_mapping(workers):
    job_id = tasks.uses_context.enqueue()
    process = workers.start("--burst", overrides={"CONTEXT": "tests.testapp.context.PLAIN_CONTEXT"})
    assert process.wait(timeout=30) == 0, workers.output(process)
    assert get_job(job_id).result == {
        "greeting": "from a plain mapping",
        "item": "from a plain mapping",
        "has_ledger": False,
    }


def test_a_context_callable_is_called_once_per_worker_process(workers, ledger):
    for n in range(12):
        tasks.add.enqueue({"a": n, "b": 0})
    overrides = {"CONTEXT": "tests.testapp.context.counted_context"}
    process = workers.start("--burst", "--processes", "2", "--concurrency", "2", overrides=overrides)
    assert process.wait(timeout=60) == 0, workers.output(process)
    builds = [entry["pid"] for entry in ledger.entries("context_built")]
    ran = [entry["pid"] for entry in ledger.entries("ran")]
    assert len(ran) == 12
    assert len(builds) == len(set(builds)) == 2 and process.pid not in builds  # once in each worker process
    assert set(ran) <= set(builds)


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
        store.scripts.forget_replies()  # this process's stored replies would go with its next call

    run(2_000)
    keys_small, bytes_small = _our_memory(redis_client)
    run(18_000)
    keys_large, bytes_large = _our_memory(redis_client)
    assert store.inspect.queue_stats("default").completed == 300
    assert keys_large <= keys_small + 2  # a minute-counter key may have been added
    assert bytes_large <= bytes_small * 1.05 + 4096, (bytes_small, bytes_large)


def test_idle_worker_blocks_on_redis_and_starts_a_new_job_at_once(workers, ledger):
    process = workers.start()
    wait_until(lambda: get_default_store().inspect.list_workers(), timeout=30, message="the worker's first heartbeat")
    time.sleep(1.0)
    cpu_start = _cpu_seconds(process.pid)
    # What the idle worker sends Redis (its scripts' own commands aside) over four seconds: blocking
    # reads of the doorbell, and the odd heartbeat or take-over look, not a polling loop.
    _, commands = CommandLog(_test_url(), scripts=False).during(lambda: time.sleep(4.0))
    used = _cpu_seconds(process.pid) - cpu_start
    assert used < 0.4, f"idle worker used {used:.2f}s CPU in 4s"
    assert len(commands) < 20, [" ".join(args) for args in commands]  # under 5 a second
    blocks = [_option(args, "BLOCK") for args in commands if args[0].upper() == "XREAD"]
    assert blocks and all(ms is not None and int(ms) >= 1000 for ms in blocks), blocks  # each waits 1 s or more
    enqueued = time.time()
    job_id = tasks.record.enqueue({"n": 1})
    [ran] = wait_until(lambda: ledger.entries("ran"), timeout=10, message="the job to start")
    assert ran["job"] == job_id and ran["pid"] == process.pid
    assert ran["t"] - enqueued < 0.5, f"the job started {ran['t'] - enqueued:.3f}s after its enqueue"


def _option(args: list[str], name: str) -> str | None:
    """The value after option ``name`` in a command's arguments, or None."""
    upper = [arg.upper() for arg in args]
    return args[upper.index(name) + 1] if name in upper else None


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
