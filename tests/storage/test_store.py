"""The store's state transitions (Lua scripts) on a real Redis: the contract the worker relies on."""

from __future__ import annotations

import json
import threading
import time

import pytest

from tempotask_django.job import JobStatus
from tempotask_django.storage.keys import CONSUMER_GROUP
from tempotask_django.storage.records import Finish, JobSpec, SweepResult
from tempotask_django.storage.scripts import script_source
from tests.helpers import finish, minute_stats

pytestmark = pytest.mark.redis

Q = "default"


def spec(job_id: str, **kwargs) -> JobSpec:
    return JobSpec(id=job_id, name="add", queue=kwargs.pop("queue", Q), data=json.dumps({"a": 1, "b": 2}), **kwargs)


def statuses(store, job_id: str, queue: str = Q) -> list[str]:
    """Every status set holding ``job_id`` (the invariant: exactly one)."""
    keys = store.keys(queue)
    return [status for status in JobStatus if store.client.zscore(keys.status(status), job_id) is not None]


def complete(store, consumer: str, job: dict, result: str = "1"):
    return finish(store, consumer, [Finish(Q, job["entry"], job["id"], True, result)])[0]


def test_enqueue_then_claim_marks_processing_with_a_lease(store):
    assert store.enqueue(spec("j1")) == (True, "waiting")
    assert statuses(store, "j1") == ["waiting"]
    claimed = store.claim(Q, "w1", 10)
    assert [job["id"] for job in claimed.jobs] == ["j1"]
    job = claimed.jobs[0]
    assert job["status"] == "processing" and job["worker"] == "w1" and job["attempt"] == "1"
    assert statuses(store, "j1") == ["processing"]
    pending = store.client.xpending_range(store.keys(Q).stream, CONSUMER_GROUP, "-", "+", 10)
    assert [(p["message_id"], p["consumer"]) for p in pending] == [(job["entry"], "w1")]


def test_active_job_id_deduplicates_and_finished_one_is_replaced(store):
    assert store.enqueue(spec("dup")) == (True, "waiting")
    assert store.enqueue(spec("dup")) == (False, "waiting")
    job = store.claim(Q, "w1", 1).jobs[0]
    assert store.enqueue(spec("dup")) == (False, "processing")
    assert complete(store, "w1", job).accepted
    assert store.enqueue(spec("dup")) == (True, "waiting")
    assert statuses(store, "dup") == ["waiting"]
    assert store.inspect.count_jobs(Q, "completed") == 0


def test_racing_producers_with_one_id_create_one_job(store):
    barrier = threading.Barrier(8)
    results = []

    def produce():
        barrier.wait()
        results.append(store.enqueue(spec("race"))[0])

    threads = [threading.Thread(target=produce) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
    assert store.inspect.count_jobs(Q, "waiting") == 1


def test_priority_then_fifo_order(store):
    for job_id, priority in [("a", 0), ("b", 5), ("c", 0), ("d", -3), ("e", 5)]:
        store.enqueue(spec(job_id, priority=priority))
    order = [job["id"] for job in store.claim(Q, "w1", 10).jobs]
    assert order == ["b", "e", "a", "c", "d"]


def test_delayed_job_is_promoted_by_the_server_clock(store):
    store.enqueue(spec("later", delay_ms=300))
    first = store.claim(Q, "w1", 5)
    assert first.jobs == [] and 0 < first.next_due_ms <= 300
    assert statuses(store, "later") == ["delayed"]
    time.sleep(0.35)
    assert [job["id"] for job in store.claim(Q, "w1", 5).jobs] == ["later"]


def test_run_at_in_the_past_is_waiting_at_once(store):
    assert store.enqueue(spec("past", run_at_ms=1000)) == (True, "waiting")


def test_finish_by_a_worker_that_lost_the_job_is_refused(store):
    store.enqueue(spec("j"))
    job = store.claim(Q, "w1", 1).jobs[0]
    # w2 takes it over after a stall (idle time 0 counts as stalled here).
    store.settings = type(store.settings)(**{**store.settings.__dict__, "stalled_timeout": 0.0})
    taken = store.reclaim(Q, "w2", 1)
    assert [j["id"] for j in taken.jobs] == ["j"]
    refused = complete(store, "w1", job, '"late"')
    assert not refused.accepted and "w2" in refused.reason
    assert statuses(store, "j") == ["processing"]
    assert complete(store, "w2", taken.jobs[0], '"ok"').accepted
    assert store.inspect.get_job(Q, "j").result == "ok"


def test_renew_keeps_the_lease_and_reports_lost_entries(store):
    store.enqueue(spec("j"))
    job = store.claim(Q, "w1", 1).jobs[0]
    time.sleep(0.05)
    assert store.renew(Q, "w1", [job["entry"]]) == []
    pending = store.client.xpending_range(store.keys(Q).stream, CONSUMER_GROUP, "-", "+", 1)[0]
    assert pending["time_since_delivered"] < 50
    assert pending["times_delivered"] == 1  # renewing does not count as a delivery
    assert store.renew(Q, "w2", [job["entry"]]) == [job["entry"]]  # w2 cannot steal by renewing


def test_stalled_job_is_reclaimed_as_a_new_attempt(store):
    store.enqueue(spec("j"))
    store.claim(Q, "dead-worker", 1)
    assert store.reclaim(Q, "w2", 1).jobs == []  # not idle long enough (30 s)
    store.settings = type(store.settings)(**{**store.settings.__dict__, "stalled_timeout": 0.0})
    job = store.reclaim(Q, "w2", 1).jobs[0]
    assert (job["attempt"], job["worker"]) == ("2", "w2")
    errors = store.inspect.get_job(Q, "j").errors
    assert errors[0]["type"] == "Stalled" and "dead-worker" in errors[0]["message"]


def test_poison_pill_fails_after_max_deliveries(store):
    store.settings = type(store.settings)(**{**store.settings.__dict__, "stalled_timeout": 0.0, "max_deliveries": 2})
    store.enqueue(spec("pill"))
    store.claim(Q, "w0", 1)
    assert len(store.reclaim(Q, "w1", 1, idle=True).jobs) == 1  # delivery 2
    result = store.reclaim(Q, "w2", 1, idle=True)  # delivery 3 > 2
    assert result.jobs == [] and result.poisoned == 1
    job = store.inspect.get_job(Q, "pill")
    assert job.status == JobStatus.FAILED and job.errors[-1]["type"] == "PoisonPill"
    assert statuses(store, "pill") == ["failed"]
    assert store.client.xlen(store.keys(Q).stream) == 0


def test_fail_schedules_retry_or_dead_letters(store):
    store.enqueue(spec("j", max_attempts=2))
    job = store.claim(Q, "w1", 1).jobs[0]
    error = json.dumps({"attempt": 1, "type": "ValueError", "message": "x", "traceback": "tb"})
    out = finish(store, "w1", [Finish(Q, job["entry"], "j", False, error, 60_000)])[0]
    assert (out.accepted, out.status) == (True, "delayed")
    assert statuses(store, "j") == ["delayed"]
    store.client.zadd(store.keys(Q).delayed, {"j": 0})
    job = store.claim(Q, "w1", 1).jobs[0]
    out = finish(store, "w1", [Finish(Q, job["entry"], "j", False, error, -1)])[0]
    assert out.status == "failed"
    record = store.inspect.get_job(Q, "j")
    assert record.status == JobStatus.FAILED and len(record.errors) == 2
    assert store.client.xlen(store.keys(Q).stream) == 0


def test_delete_and_retry(store):
    store.enqueue(spec("j"))
    job = store.claim(Q, "w1", 1).jobs[0]
    assert store.delete_job(Q, "j") == "processing"
    assert statuses(store, "j") == []
    assert not complete(store, "w1", job).accepted  # the worker's finish is refused
    assert store.delete_job(Q, "j") is None

    store.enqueue(spec("k"))
    job = store.claim(Q, "w1", 1).jobs[0]
    finish(store, "w1", [Finish(Q, job["entry"], "k", False, "{}", -1)])
    assert store.retry_job(Q, "k") == "failed"
    assert statuses(store, "k") == ["waiting"]
    assert store.inspect.get_job(Q, "k").attempt == 0
    assert store.retry_job(Q, "k") == "waiting"  # not retryable: unchanged
    assert statuses(store, "k") == ["waiting"]


def test_purge_history(store):
    for n in range(7):
        store.enqueue(spec(f"j{n}"))
    for job in store.claim(Q, "w1", 7).jobs:
        complete(store, "w1", job)
    assert store.purge(Q, "completed", batch=3) == 7
    assert store.inspect.count_jobs(Q, "completed") == 0
    keys = store.keys(Q)
    assert not [
        k for prefix in (keys.job_prefix, keys.logs_prefix, keys.errors_prefix) for k in store.client.keys(f"{prefix}*")
    ]


def test_foreign_stream_entries_become_failed_jobs(store):
    store.client.xadd(store.keys(Q).stream, {"garbage": "\x00\xff{"})
    store.enqueue(spec("good"))
    claimed = store.claim(Q, "w1", 1)
    assert [job["id"] for job in claimed.jobs] == ["good"]
    failed = store.inspect.list_jobs(Q, "failed")
    assert len(failed) == 1 and failed[0].id.startswith("invalid-entry-")
    assert "not a tempotask job" in store.inspect.get_job(Q, failed[0].id).errors[0]["message"]


def test_lost_group_is_recreated_and_orphaned_jobs_are_not_lost(store):
    store.enqueue(spec("a"))
    store.claim(Q, "w1", 1)  # a is running when the group vanishes
    store.client.xgroup_destroy(store.keys(Q).stream, CONSUMER_GROUP)
    store.enqueue(spec("b"))
    ids = [job["id"] for job in store.claim(Q, "w2", 5).jobs]
    assert sorted(ids) == ["a", "b"]


def test_restart_without_persistence_is_survived(store):
    store.enqueue(spec("a"))
    store.client.flushdb()  # what a restart of a Redis without persistence looks like
    store.enqueue(spec("b"))
    assert [job["id"] for job in store.claim(Q, "w1", 5).jobs] == ["b"]


def pending_count(store, queue: str = Q) -> int:
    return store.client.xpending(store.keys(queue).stream, CONSUMER_GROUP)["pending"]


def delete_entry(store, job: dict) -> None:
    """What XDEL or XTRIM by another program does to a running job's entry: it stays pending."""
    assert store.client.xdel(store.keys(Q).stream, job["entry"]) == 1


def test_entry_deleted_while_pending_of_a_dead_worker_is_acked_and_its_job_runs_again(store):
    """The take-over acks the tombstone (Redis 7 drops it itself); the sweep finds the job, which is
    processing with an entry nobody holds, and queues it again as a new attempt."""
    store.enqueue(spec("a", priority=5))
    job = store.claim(Q, "dead-worker", 1).jobs[0]
    delete_entry(store, job)
    assert store.sweep_lost_entries(Q).requeued == 0  # still pending: the take-over's business
    _stalled_now(store)
    assert store.reclaim(Q, "w2", 5).jobs == []
    assert pending_count(store) == 0
    assert statuses(store, "a") == ["processing"]  # until the sweep
    assert store.sweep_lost_entries(Q) == SweepResult(0, 1, 0)
    record = store.inspect.get_job(Q, "a")
    assert (record.status, record.attempt, record.entry_id, record.priority) == (JobStatus.WAITING, 1, None, 5)
    assert statuses(store, "a") == ["waiting"]
    error = record.errors[-1]
    assert error["type"] == "EntryLost" and error["attempt"] == 1 and error["worker"] == "dead-worker"
    assert "its stream entry was lost: deleted while pending, or Redis lost it" in error["message"]
    again = store.claim(Q, "w2", 1).jobs[0]
    assert again["attempt"] == "2" and again["entry"] != job["entry"]
    assert complete(store, "w2", again).accepted
    assert store.inspect.get_job(Q, "a").status == JobStatus.COMPLETED
    assert store.client.xlen(store.keys(Q).stream) == pending_count(store) == 0


def test_entry_deleted_while_pending_of_a_live_worker_is_reported_lost_and_its_job_runs_again(store):
    """Renewing a deleted entry is impossible (Redis 7's XCLAIM drops it silently): renew reports it
    lost and acks it, so the worker's finish is refused and the sweep queues the job again."""
    store.enqueue(spec("a"))
    store.enqueue(spec("b"))
    job, other = store.claim(Q, "w1", 2).jobs
    delete_entry(store, job)
    assert store.renew(Q, "w1", [job["entry"], other["entry"]]) == [job["entry"]]
    assert pending_count(store) == 1  # b's lease is renewed and kept
    refused = complete(store, "w1", job)
    assert not refused.accepted and "no longer pending" in refused.reason
    assert store.sweep_lost_entries(Q) == SweepResult(0, 1, 0)
    assert statuses(store, "a") == ["waiting"] and statuses(store, "b") == ["processing"]
    again = store.claim(Q, "w1", 1).jobs[0]
    assert (again["id"], again["attempt"]) == ("a", "2")
    assert complete(store, "w1", again).accepted and complete(store, "w1", other).accepted
    assert [store.inspect.get_job(Q, job_id).status for job_id in "ab"] == [JobStatus.COMPLETED] * 2


def test_sweep_leaves_jobs_whose_entry_is_pending_alone(store):
    for job_id in "abc":
        store.enqueue(spec(job_id))
    store.claim(Q, "w1", 1)  # a: running
    store.claim(Q, "dead", 1)  # b: stalled, left to the take-over
    _stalled_now(store)
    before = {job_id: store.client.hgetall(store.keys(Q).job(job_id)) for job_id in "abc"}
    assert store.sweep_lost_entries(Q) == SweepResult(0, 0, 0)
    assert {job_id: store.client.hgetall(store.keys(Q).job(job_id)) for job_id in "abc"} == before
    assert pending_count(store) == 2


def test_an_entry_lost_again_and_again_fails_the_job_at_max_deliveries(store):
    """As for a stall, runs in a row that never finished count against MAX_DELIVERIES."""
    _stalled_now(store, max_deliveries=3)
    store.enqueue(spec("j"))
    store.claim(Q, "dead", 1)
    (taken,) = store.reclaim(Q, "w1", 1, idle=True).jobs  # run 1 never finished (a stall)
    delete_entry(store, taken)
    assert store.renew(Q, "w1", [taken["entry"]]) == [taken["entry"]]
    assert store.sweep_lost_entries(Q) == SweepResult(0, 1, 0)  # run 2 never finished: 2 in a row
    (again,) = store.claim(Q, "w2", 1).jobs
    delete_entry(store, again)
    assert store.renew(Q, "w2", [again["entry"]]) == [again["entry"]]
    assert store.sweep_lost_entries(Q) == SweepResult(0, 0, 1)  # 3 in a row: failed, not queued again
    record = store.inspect.get_job(Q, "j")
    assert record.status == JobStatus.FAILED and statuses(store, "j") == ["failed"]
    assert [error["type"] for error in record.errors] == ["Stalled", "EntryLost", "PoisonPill"]
    assert "3 runs in a row never finished" in record.errors[-1]["message"]
    assert "MAX_DELIVERIES=3" in record.errors[-1]["message"]
    assert store.client.xlen(store.keys(Q).stream) == pending_count(store) == 0
    # A retry starts a new streak: the PoisonPill error ends the old one.
    assert store.retry_job(Q, "j") == "failed"
    (fresh,) = store.claim(Q, "w2", 1).jobs
    delete_entry(store, fresh)
    store.renew(Q, "w2", [fresh["entry"]])
    assert store.sweep_lost_entries(Q) == SweepResult(0, 1, 0)


def test_sweep_pages_through_the_processing_set(store):
    for n in range(25):
        store.enqueue(spec(f"j{n}"))
    jobs = store.claim(Q, "w1", 25).jobs
    lost = {job["id"] for job in jobs[::3]}
    for job in jobs:
        if job["id"] in lost:
            delete_entry(store, job)
    assert sorted(store.renew(Q, "w1", [job["entry"] for job in jobs])) == sorted(
        job["entry"] for job in jobs if job["id"] in lost
    )
    offset, calls, requeued = 0, 0, 0
    while True:
        result = store.sweep_lost_entries(Q, offset, page=4)
        calls, requeued, offset = calls + 1, requeued + result.requeued, result.offset
        if offset == 0:
            break
    assert requeued == len(lost) == 9 and calls > 4
    assert {job.id for job in store.inspect.list_jobs(Q, "waiting", limit=100)} == lost
    assert store.inspect.count_jobs(Q, "processing") == pending_count(store) == 25 - len(lost)


def test_sweep_does_nothing_without_the_group(store):
    store.enqueue(spec("a"))
    store.claim(Q, "w1", 1)
    store.client.xgroup_destroy(store.keys(Q).stream, CONSUMER_GROUP)
    assert store.sweep_lost_entries(Q) == SweepResult(0, 0, 0)  # the next claim redelivers it
    assert [job["id"] for job in store.claim(Q, "w2", 5).jobs] == ["a"]


def test_forget_consumers_keeps_consumers_with_pending_entries(store):
    store.enqueue(spec("a"))
    store.enqueue(spec("b"))
    store.claim(Q, "busy", 1)
    complete(store, "idle", store.claim(Q, "idle", 1).jobs[0])
    assert store.forget_consumers(Q, 0) == ["idle"]
    pending = store.client.xpending(store.keys(Q).stream, CONSUMER_GROUP)
    assert pending["pending"] == 1


def test_pause_stops_claims(store):
    store.enqueue(spec("a"))
    store.pause_queue(Q)
    result = store.claim(Q, "w1", 1)
    assert result.paused and result.jobs == []
    store.resume_queue(Q)
    assert len(store.claim(Q, "w1", 1).jobs) == 1


def test_resuming_a_queue_wakes_its_idle_workers(store):
    store.enqueue(spec("a"))
    store.pause_queue(Q)
    paused = store.claim(Q, "w1", 1)  # a worker of a paused queue waits on the doorbell after this
    assert paused.paused
    store.resume_queue(Q)
    started = time.monotonic()
    assert store.wait_for_jobs({Q: paused.wake_id}, 5000), "the doorbell rang"
    assert time.monotonic() - started < 1.0


def test_queue_stats_and_minute_counters(store):
    store.enqueue(spec("a"))
    store.enqueue(spec("b"))
    store.enqueue(spec("c", delay_ms=60_000))
    job = store.claim(Q, "w1", 1).jobs[0]
    complete(store, "w1", job)
    stats = store.inspect.queue_stats(Q)
    assert (stats.waiting, stats.processing, stats.delayed, stats.completed, stats.failed) == (1, 0, 1, 1, 0)
    assert stats.consumers == 1 and not stats.paused and stats.next_job_age is not None
    series = minute_stats(store, Q, 5)
    assert len(series) == 5 and series[-1]["completed"] == 1


def test_wait_for_jobs_wakes_on_enqueue(store):
    wake = store.claim(Q, "w1", 1).wake_id
    timer = threading.Timer(0.1, lambda: store.enqueue(spec("a")))
    timer.start()
    started = time.monotonic()
    assert store.wait_for_jobs({Q: wake}, 5000)
    assert time.monotonic() - started < 2
    timer.join()


def test_logs_are_capped_and_not_written_for_missing_jobs(store):
    store.enqueue(spec("a"))
    assert store.append_log(Q, "a", json.dumps("hello"))
    assert not store.append_log(Q, "missing", json.dumps("hello"))
    assert not store.client.exists(store.keys(Q).logs("missing"))
    assert store.inspect.get_job(Q, "a").logs[0]["message"] == "hello"


def test_enqueue_many_is_one_round_trip_with_dedup(store):
    results = store.enqueue_many([spec("a"), spec("b"), spec("a")])
    assert results == [(True, "waiting"), (True, "waiting"), (False, "waiting")]


def test_scripts_reload_after_script_flush(store):
    store.client.script_flush()
    assert store.enqueue(spec("a")) == (True, "waiting")
    store.client.script_flush()
    assert store.enqueue_many([spec("b")]) == [(True, "waiting")]


def test_a_finished_batch_checks_each_job_on_its_own(store):
    store.enqueue_many([spec("a"), spec("b"), spec("c")])
    jobs = {job["id"]: job for job in store.claim(Q, "w1", 3).jobs}
    store.delete_job(Q, "b")  # its lease is released: w1's finish of b must be refused, not the others
    finishes = [Finish(Q, jobs[i]["entry"], i, True, f'"{i}"') for i in ("a", "b", "c")]
    outcomes = finish(store, "w1", finishes)
    assert [o.accepted for o in outcomes] == [True, False, True]
    assert "no longer pending" in outcomes[1].reason
    assert [statuses(store, i) for i in ("a", "c")] == [["completed"], ["completed"]]
    assert store.inspect.get_job(Q, "b") is None
    assert store.inspect.get_job(Q, "c").result == "c" and store.inspect.get_job(Q, "c").entry_id is None
    assert store.inspect.queue_stats(Q).processing == 0 and store.client.xlen(store.keys(Q).stream) == 0
    assert minute_stats(store, Q, 1)[-1]["completed"] == 2


def test_a_finished_batch_counts_each_owned_job_in_the_per_task_metrics(store):
    store.enqueue_many([spec("a"), spec("b"), spec("c"), JobSpec(id="d", name="record", queue=Q, data="{}")])
    jobs = {job["id"]: job for job in store.claim(Q, "w1", 4).jobs}
    store.delete_job(Q, "b")  # refused: not counted
    outcomes = finish(store, "w1", [Finish(Q, jobs[i]["entry"], i, True, "1") for i in ("a", "b", "c", "d")])
    assert [o.accepted for o in outcomes] == [True, False, True, True]
    metrics = store.client.hgetall(store.keys(Q).metrics)
    assert metrics["completed:add"] == "2" and metrics["completed:record"] == "1"
    assert sum(int(v) for f, v in metrics.items() if f.startswith("duration:") and f.endswith(":add")) == 2
    assert sum(int(v) for f, v in metrics.items() if f.startswith("duration:") and f.endswith(":record")) == 1
    assert int(metrics["duration_ms:add"]) >= 0 and "duration_ms:record" in metrics
    assert not [f for f in metrics if not f.endswith((":add", ":record"))]


def test_minute_counter_gets_its_ttl_once_and_keeps_it(store):
    store.enqueue_many([spec("a"), spec("b")])
    for job in store.claim(Q, "w1", 2).jobs:
        complete(store, "w1", job)
    key, minute = store.keys(Q).minutes, store.server_time_ms() // 60_000
    assert store.client.hgetall(key) == {store.keys(Q).minute_field(minute, "completed"): "2"}
    assert 7000 < store.client.ttl(key) <= 7200


def test_minute_counts_older_than_two_hours_go_with_the_first_count_of_a_minute(store):
    keys, minute = store.keys(Q), store.server_time_ms() // 60_000
    old = {keys.minute_field(minute - ago, kind): 1 for ago in (120, 200, 240) for kind in ("failed", "retried")}
    kept = {keys.minute_field(minute - 119, "failed"): 1, keys.minute_field(minute - 241, "failed"): 1}
    store.client.hset(keys.minutes, mapping={**old, **kept})
    store.enqueue(spec("a"))
    complete(store, "w1", store.claim(Q, "w1", 1).jobs[0])
    assert set(store.client.hkeys(keys.minutes)) == {*kept, keys.minute_field(minute, "completed")}


def test_a_batch_of_finishes_trims_history_once_to_the_limit(store, settings):
    settings.TEMPOTASK = {**settings.TEMPOTASK, "MAX_JOBS_PER_STATUS": 2}
    from tempotask_django.storage.connection import get_default_store

    store = get_default_store()
    store.enqueue_many([spec(str(n)) for n in range(5)])
    jobs = store.claim(Q, "w1", 5).jobs
    assert all(o.accepted for o in finish(store, "w1", [Finish(Q, j["entry"], j["id"], True, "1") for j in jobs]))
    assert store.inspect.queue_stats(Q).completed == 2
    kept = store.inspect.list_job_ids(Q, "completed", 0, 10)
    assert all(store.client.exists(store.keys(Q).job(i)) == (i in kept) for i in map(str, range(5)))


def test_finish_and_claim_records_then_claims_in_one_round_trip(store):
    store.enqueue_many([spec("a"), spec("b"), spec("c")])
    (job,) = store.claim(Q, "w1", 1).jobs
    outcomes, claimed = store.finish_and_claim("w1", [Finish(Q, job["entry"], "a", True, "1")], Q, 5)
    assert outcomes[0].accepted
    assert [j["id"] for j in claimed.jobs] == ["b", "c"]
    assert all(j["status"] == "processing" and j["worker"] == "w1" and j["attempt"] == "1" for j in claimed.jobs)


def test_after_noscript_only_the_refused_calls_run_again(store):
    """A claim that ran must not run twice: it would lease jobs that nobody starts."""
    store.enqueue_many([spec("a"), spec("b"), spec("c")])
    (job,) = store.claim(Q, "w1", 1).jobs
    store.client.script_flush()
    store.client.script_load(script_source("claim"))  # claim is loaded, complete is not
    outcomes, claimed = store.finish_and_claim("w1", [Finish(Q, job["entry"], "a", True, "1")], Q, 1)
    assert outcomes[0].accepted and [j["id"] for j in claimed.jobs] == ["b"]
    assert store.inspect.queue_stats(Q).processing == 1 and store.inspect.queue_stats(Q).waiting == 1


def test_enqueue_many_across_queues_keeps_order_and_dedups_each_job(store):
    specs = [spec("a"), spec("x", queue="other"), spec("b"), spec("a"), spec("y", queue="other", delay_ms=60_000)]
    assert store.enqueue_many(specs) == [
        (True, "waiting"),
        (True, "waiting"),
        (True, "waiting"),
        (False, "waiting"),
        (True, "delayed"),
    ]
    assert [j["id"] for j in store.claim(Q, "w1", 5).jobs] == ["a", "b"]
    assert store.inspect.queue_stats("other").delayed == 1


def test_a_lost_group_is_created_by_the_claim_that_needs_it(store):
    store.enqueue(spec("a"))
    store.client.delete(store.keys(Q).stream)
    assert [j["id"] for j in store.claim(Q, "w1", 1).jobs] == ["a"]
    assert store.client.xinfo_groups(store.keys(Q).stream)[0]["name"] == CONSUMER_GROUP


def test_a_failing_claim_does_not_hide_recorded_finishes(store):
    store.enqueue(spec("a"))
    (job,) = store.claim(Q, "w1", 1).jobs
    store.client.delete(store.keys(Q).waiting)
    store.client.set(store.keys(Q).waiting, "not a sorted set")  # the claim's ZPOPMIN fails
    outcomes, claimed = store.finish_and_claim("w1", [Finish(Q, job["entry"], "a", True, "1")], Q, 1)
    assert outcomes[0].accepted and claimed is None
    assert store.inspect.get_job(Q, "a").status == JobStatus.COMPLETED


def _stalled_now(store, **changes):
    store.settings = type(store.settings)(**{**store.settings.__dict__, "stalled_timeout": 0.0, **changes})


def test_a_job_dying_with_a_poison_pill_is_not_failed_with_it(store):
    """Jobs killed together are taken over together; from the second death on, each runs alone, so
    the pill's deaths stop counting against the innocent job (before, both were failed)."""
    lease = 0.2
    _stalled_now(store, max_deliveries=3, stalled_timeout=lease)
    store.enqueue(spec("pill"))
    store.enqueue(spec("innocent"))
    assert len(store.claim(Q, "w0", 2).jobs) == 2  # w0 dies with both
    time.sleep(lease)
    assert len(store.reclaim(Q, "w1", 2).jobs) == 2  # delivery 2: taken over together; w1 dies too
    time.sleep(lease)
    busy = store.reclaim(Q, "w2", 2)  # delivery 3: suspects, not for a worker running anything
    assert (busy.jobs, busy.suspects) == ([], 2)
    first = store.reclaim(Q, "w2", 2, idle=True)
    assert first.alone and len(first.jobs) == 1 and first.suspects == 0
    second = store.reclaim(Q, "w3", 2, idle=True)
    assert second.alone and len(second.jobs) == 1
    by_id = {job["id"]: (worker, job) for worker, job in (("w2", first.jobs[0]), ("w3", second.jobs[0]))}
    worker, innocent = by_id["innocent"]
    assert complete(store, worker, innocent).accepted
    time.sleep(lease)  # the pill's worker died alone
    assert store.reclaim(Q, "w4", 2, idle=True).poisoned == 1  # delivery 4 > 3
    assert store.inspect.get_job(Q, "innocent").status == JobStatus.COMPLETED
    assert store.inspect.get_job(Q, "pill").errors[-1]["type"] == "PoisonPill"


def test_reclaim_pages_through_many_deleted_entries(store):
    """Entries deleted while pending are acked page by page (cursor), on Redis 6.2 and 7, and the
    sweep that follows queues every one of their jobs again."""
    _stalled_now(store)
    for n in range(25):
        store.enqueue(spec(f"j{n}"))
    for job in store.claim(Q, "dead", 25).jobs:
        store.client.xdel(store.keys(Q).stream, job["entry"])
    cursor, calls = "0-0", 0
    while True:
        result = store.reclaim(Q, "w1", 1, cursor)
        calls += 1
        assert result.jobs == []
        cursor = result.cursor
        if cursor == "0-0":
            break
    assert calls == 3  # pages of COUNT x 10
    assert store.client.xpending(store.keys(Q).stream, CONSUMER_GROUP)["pending"] == 0
    assert store.sweep_lost_entries(Q) == SweepResult(0, 25, 0)
    assert store.inspect.count_jobs(Q, "waiting") == 25 and store.inspect.count_jobs(Q, "processing") == 0
    again = store.claim(Q, "w1", 25).jobs
    assert len(again) == 25 and {job["attempt"] for job in again} == {"2"}
    assert all(
        outcome.accepted for outcome in finish(store, "w1", [Finish(Q, j["entry"], j["id"], True, "1") for j in again])
    )
    assert store.inspect.count_jobs(Q, "completed") == 25
