"""Rate and concurrency limits hold across several worker processes (fleet-wide), by the Redis clock.

Times come from the job records (started_at, finished_at: the Redis server's clock), as the limits
themselves are counted.
"""

from __future__ import annotations

import pytest

from tempotask_django import add_jobs, get_job
from tempotask_django.job import JobStatus
from tests.helpers import wait_until

pytestmark = [pytest.mark.redis, pytest.mark.slow]

PROCESSES = 3


def run_fleet(workers, jobs: list[dict], timeout: float = 30.0) -> list:
    ids = add_jobs(jobs)
    for _ in range(PROCESSES):
        workers.start("--queues", "slow", "--concurrency", "4")

    def finished():
        records = [get_job(job_id, queue="slow") for job_id in ids]
        return records if all(r and r.status == JobStatus.COMPLETED for r in records) else None

    return wait_until(finished, timeout=timeout, interval=0.1, message="every job to complete")


def starts_ms(records) -> list[int]:
    return sorted(int(r.started_at.timestamp() * 1000) for r in records)


def max_in_window(starts: list[int], window_ms: int) -> int:
    return max(sum(1 for t in starts[i:] if t <= start + window_ms) for i, start in enumerate(starts))


def max_overlap(records) -> int:
    events = sorted(
        [(r.started_at, 1) for r in records] + [(r.finished_at, -1) for r in records], key=lambda e: (e[0], e[1])
    )
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


@pytest.mark.parametrize("name", ["rated", "rated_async"])
def test_a_rate_limit_holds_across_worker_processes(workers, name):
    records = run_fleet(workers, [{"name": name, "data": {"n": n}} for n in range(25)])
    starts = starts_ms(records)
    assert max_in_window(starts, 1000) <= 10
    # 25 starts at 10 per second take two windows at least: the limit slowed them down.
    assert starts[-1] - starts[0] >= 2000
    assert all(r.attempt == 1 for r in records)  # waiting on the limit counts no attempt


@pytest.mark.parametrize("name", ["capped", "capped_async"])
def test_max_concurrency_holds_across_worker_processes(workers, name):
    records = run_fleet(workers, [{"name": name, "data": {"n": n}} for n in range(10)])
    assert max_overlap(records) == 2
    assert all(r.attempt == 1 for r in records)


def test_jobs_over_a_limit_do_not_hold_up_other_tasks_of_the_queue(workers):
    capped = [{"name": "capped", "data": {"n": n}} for n in range(8)]
    free = [{"name": "rated_async", "data": {"n": n}, "priority": -1} for n in range(5)]
    records = run_fleet(workers, capped + free)
    capped_records, free_records = records[:8], records[8:]
    # The lower-priority jobs behind the parked ones all started before the capped jobs were through.
    assert max(r.started_at for r in free_records) < max(r.started_at for r in capped_records)


def test_a_keyed_limit_applies_per_value(workers):
    jobs = [{"name": "one_per_tenant", "data": {"tenant": tenant, "n": n}} for n in range(3) for tenant in "abc"]
    records = run_fleet(workers, jobs)
    for tenant in "abc":
        assert max_overlap([r for r in records if r.data["tenant"] == tenant]) == 1
    # Tenants do not wait for each other: the three ran side by side.
    assert max_overlap(records) == 3


def test_the_slot_of_a_killed_worker_comes_back_with_its_lease(workers):
    """SIGKILL the worker running the one job a limit allows: another worker takes the job over after
    STALLED_TIMEOUT, runs it again in the same slot, and the jobs waiting on the limit follow."""
    import signal

    ids = add_jobs([{"name": "capped_long", "data": {"n": n}} for n in range(3)])
    overrides = {"STALLED_TIMEOUT": 1}
    first = workers.start("--queues", "slow", "--concurrency", "4", overrides=overrides)
    wait_until(
        lambda: any((job := get_job(i, queue="slow")) and job.status == JobStatus.PROCESSING for i in ids),
        timeout=20,
        message="a job to start",
    )
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    workers.start("--queues", "slow", "--concurrency", "4", overrides=overrides)

    def finished():
        records = [get_job(job_id, queue="slow") for job_id in ids]
        return records if all(r and r.status == JobStatus.COMPLETED for r in records) else None

    records = wait_until(finished, timeout=40, interval=0.1, message="every job to complete")
    assert max_overlap(records) == 1
    assert sorted(r.attempt for r in records) == [1, 1, 2]  # the job taken over ran twice, the parked ones once
