"""Rate and concurrency limits in the claim script, on a real Redis (see storage/lua/limits.lua)."""

from __future__ import annotations

import json
import time

import pytest
from django.test import override_settings

from tempotask_django.conf import get_settings
from tempotask_django.storage.records import Finish, JobSpec
from tests.helpers import finish

pytestmark = pytest.mark.redis

Q = "default"


def spec(job_id: str, limit: str = "", rate: str = "", maxc: int = 0, priority: int = 0) -> JobSpec:
    return JobSpec(
        id=job_id,
        name="add",
        queue=Q,
        data=json.dumps({}),
        priority=priority,
        rate=rate,
        max_concurrency=maxc,
        limit=limit,
    )


def claimed_ids(store, count: int = 100, consumer: str = "w1") -> list[str]:
    return [job["id"] for job in store.claim(Q, consumer, count).jobs]


def record(store, job_id: str) -> dict[str, str]:
    return store.client.hgetall(store.keys(Q).job(job_id))


def complete(store, job: dict, consumer: str = "w1"):
    return finish(store, consumer, [Finish(Q, job["entry"], job["id"], True, "1")])[0]


def test_jobs_over_a_rate_stay_waiting_uncounted_and_do_not_block_other_tasks(store):
    store.enqueue_many([spec(f"r{i}", "rated", rate="3/1000") for i in range(6)] + [spec("free1"), spec("free2")])
    result = store.claim(Q, "w1", 100)
    # One batch (its order aside: the limit's keys are declared by a claim sent again at once).
    assert sorted(job["id"] for job in result.jobs) == ["free1", "free2", "r0", "r1", "r2"]
    for i in range(3, 6):
        parked = record(store, f"r{i}")
        assert parked["status"] == "waiting" and parked["attempt"] == "0"
    # The worker is told when to look again: when the first start leaves the window (about a second).
    assert 0 < result.next_due_ms <= 1001
    assert claimed_ids(store) == []


def test_parked_jobs_start_in_their_order_once_the_rate_allows(store):
    store.enqueue_many([spec(f"r{i}", "rated", rate="2/300") for i in range(5)])
    assert claimed_ids(store) == ["r0", "r1"]
    time.sleep(0.35)
    assert claimed_ids(store) == ["r2", "r3"]
    time.sleep(0.35)
    assert claimed_ids(store) == ["r4"]
    assert store.client.exists(store.keys(Q).limited, store.keys(Q).parked("rated")) == 0


def test_no_closed_window_of_the_rate_holds_more_starts_than_allowed(store):
    store.enqueue_many([spec(f"r{i}", "rated", rate="5/200") for i in range(40)])
    starts: list[int] = []
    deadline = time.monotonic() + 5
    while len(starts) < 40 and time.monotonic() < deadline:
        starts += [int(job["started_at"]) for job in store.claim(Q, "w1", 100).jobs]
        time.sleep(0.005)
    assert len(starts) == 40
    starts.sort()
    for i, start in enumerate(starts):
        assert sum(1 for t in starts[i:] if t <= start + 200) <= 5


def test_max_concurrency_parks_until_a_running_job_finishes(store):
    store.enqueue_many([spec(f"c{i}", "capped", maxc=2) for i in range(4)] + [spec("free")])
    jobs = sorted(store.claim(Q, "w1", 100).jobs, key=lambda job: job["id"])
    assert [job["id"] for job in jobs] == ["c0", "c1", "free"]
    assert claimed_ids(store) == []
    assert complete(store, jobs[0]).accepted
    # The finish frees the slot and makes the limit due at once: the next claim starts c2, not c3.
    assert claimed_ids(store) == ["c2"]
    assert store.client.zrange(store.keys(Q).running("capped"), 0, -1) == ["c1", "c2"]


def test_a_failed_attempt_frees_its_slot(store):
    store.enqueue_many([spec(f"c{i}", "capped", maxc=1) for i in range(2)])
    (job,) = store.claim(Q, "w1", 10).jobs
    outcome = finish(store, "w1", [Finish(Q, job["entry"], "c0", False, '{"type": "X"}', retry_delay_ms=-1)])[0]
    assert outcome.accepted
    assert claimed_ids(store) == ["c1"]


def test_keyed_limits_apply_per_value(store):
    store.enqueue_many(
        [spec(f"a{i}", "capped tenant-a", maxc=1) for i in range(3)]
        + [spec(f"b{i}", "capped tenant-b", maxc=1) for i in range(3)]
    )
    assert claimed_ids(store) == ["a0", "b0"]


def test_a_slot_comes_back_when_the_running_job_is_lost(store):
    """A job whose stream entry is gone is swept back to waiting: its slot is freed with it."""
    store.enqueue_many([spec(f"c{i}", "capped", maxc=1) for i in range(2)])
    (job,) = store.claim(Q, "w1", 10).jobs
    store.client.xdel(store.keys(Q).stream, job["entry"])
    store.client.xack(store.keys(Q).stream, "workers", job["entry"])
    assert store.sweep_lost_entries(Q).requeued == 1
    assert store.client.zcard(store.keys(Q).running("capped")) == 0
    assert len(claimed_ids(store)) == 1  # one of the two, and only one: the slot is free again


def test_a_stale_slot_is_found_when_the_limit_looks_full(store):
    """A slot held by a job that is no longer processing (damage, another program) does not block."""
    store.client.zadd(store.keys(Q).running("capped"), {"ghost": 1})
    store.enqueue(spec("c0", "capped", maxc=1))
    assert claimed_ids(store) == ["c0"]


def test_deleting_a_parked_job_takes_it_out_of_its_parked_set(store):
    store.enqueue_many([spec(f"c{i}", "capped", maxc=1) for i in range(2)])
    claimed_ids(store)
    assert store.delete_job(Q, "c1") == "waiting"
    assert store.client.exists(store.keys(Q).parked("capped")) == 0


def test_deleting_a_running_job_frees_its_slot(store):
    store.enqueue_many([spec(f"c{i}", "capped", maxc=1) for i in range(2)])
    claimed_ids(store)
    assert store.delete_job(Q, "c0") == "processing"
    assert claimed_ids(store) == ["c1"]


def test_limit_state_does_not_outlive_its_use(store):
    """Many limit keys leave nothing behind once idle: rate logs expire, sets empty themselves."""
    store.enqueue_many([spec(f"t{i}", f"rated tenant-{i}", rate="1/1000", maxc=1) for i in range(50)])
    jobs = store.claim(Q, "w1", 100).jobs
    assert len(jobs) == 50
    for job in jobs:
        assert complete(store, job).accepted
    keys = store.keys(Q)
    assert store.client.exists(*[keys.running(f"rated tenant-{i}") for i in range(50)]) == 0
    ttls = [store.client.pttl(keys.rate(f"rated tenant-{i}")) for i in range(50)]
    assert all(0 < ttl <= 2000 for ttl in ttls)
    assert store.client.exists(keys.limited) == 0


def test_a_queue_rate_limit_caps_starts_of_every_task(store):
    before = store.settings
    try:
        with override_settings(TEMPOTASK={**_raw(), "QUEUES": {Q: {"RATE_LIMIT": "3/s"}}}):
            store.settings = get_settings()
            store.enqueue_many([spec(f"j{i}") for i in range(5)])
            result = store.claim(Q, "w1", 100)
            assert [job["id"] for job in result.jobs] == ["j0", "j1", "j2"]
            assert 0 < result.next_due_ms <= 1001
            assert claimed_ids(store) == []
            assert store.client.zcard(store.keys(Q).waiting) == 2
    finally:
        store.settings = before


def _raw() -> dict:
    from django.conf import settings

    return dict(getattr(settings, "TEMPOTASK", {}))


def test_a_damaged_limit_in_a_record_does_not_park_the_job_for_ever(store):
    store.enqueue(spec("d1", "capped", maxc=1))
    store.client.hset(store.keys(Q).job("d1"), "maxc", "0")
    assert claimed_ids(store) == ["d1"]


def test_a_job_taken_over_from_a_dead_worker_keeps_its_slot_until_it_finishes(store):
    """The slot belongs to the running job: while another worker runs it again, the limit stays
    full; its finish there frees it."""
    import dataclasses

    before = store.settings
    store.settings = dataclasses.replace(before, stalled_timeout=0.05)
    try:
        store.enqueue_many([spec(f"c{i}", "capped", maxc=1) for i in range(2)])
        assert claimed_ids(store, consumer="dead") == ["c0"]
        time.sleep(0.1)
        (taken,) = store.reclaim(Q, "alive", 10).jobs
        assert taken["id"] == "c0" and taken["worker"] == "alive"
        assert claimed_ids(store, consumer="alive") == []  # c1 still waits: c0 holds the slot
        assert complete(store, taken, consumer="alive").accepted
        assert claimed_ids(store, consumer="alive") == ["c1"]
    finally:
        store.settings = before


def test_queue_stats_count_jobs_held_back_by_a_limit_as_waiting(store):
    store.enqueue_many([spec(f"c{i}", "one-at-a-time", maxc=1) for i in range(3)] + [spec("free")])
    assert sorted(claimed_ids(store)) == ["c0", "free"]
    stats = store.inspect.queue_stats(Q)
    # c1 and c2 are parked (status waiting, out of the claimable set): still waiting to the reader.
    assert (stats.waiting, stats.parked, stats.processing) == (2, 2, 2)
    assert record(store, "c1")["status"] == "waiting"
