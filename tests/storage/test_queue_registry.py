"""The set of queue names: every queue holding jobs is in it, even after Redis lost its data, and
queues left with nothing are pruned from it."""

from __future__ import annotations

import json

import pytest

from tempotask_django.storage.records import Finish, JobSpec
from tests.helpers import finish

pytestmark = pytest.mark.redis


def spec(job_id: str, queue: str, **options) -> JobSpec:
    return JobSpec(id=job_id, name="add", queue=queue, data=json.dumps({"a": 1}), **options)


def registered(store) -> set[str]:
    return set(store.client.smembers(store.global_keys.queues))


def test_an_enqueue_registers_its_queue_again_after_redis_lost_its_data(store):
    store.enqueue(spec("a", "reports"))
    store.enqueue_many([spec("b", "exports", delay_ms=60_000)])
    assert registered(store) == {"reports", "exports"}
    store.client.flushdb()  # FLUSHALL, or a restart without persistence
    store.enqueue(spec("c", "reports"))
    store.enqueue_many([spec("d", "exports", delay_ms=60_000)])
    assert registered(store) == {"reports", "exports"}


def test_a_queue_left_with_nothing_is_forgotten_and_comes_back_with_its_next_job(store):
    store.enqueue_many([spec("a", "gone"), spec("b", "busy"), spec("c", "purged"), spec("d", "paused")])
    store.pause_queue("paused")
    assert registered(store) == {"gone", "busy", "purged", "paused"}

    assert store.delete_job("gone", "a") == "waiting"
    (job,) = store.claim("purged", "w1", 1).jobs
    finish(store, "w1", [Finish("purged", job["entry"], "c", True, "1")])
    assert store.purge("purged", "completed") == 1
    assert store.delete_job("paused", "d") == "waiting"
    assert registered(store) == {"busy", "paused"}
    # The replies the last calls keep for a resend go with later calls (else they expire).
    assert {key.rsplit(":", 1)[0] for key in store.client.keys(f"{store.keys('gone').base}*")} <= {
        store.keys("gone").reply("").rstrip(":")
    }
    # Only its per-minute counters are left (and those replies), and they expire.
    left = set(store.client.keys(f"{store.keys('purged').base}*"))
    stored = store.keys("purged").reply("")
    assert store.keys("purged").minutes in left
    assert all(key == store.keys("purged").minutes or key.startswith(stored) for key in left)

    store.enqueue(spec("again", "gone"))
    assert "gone" in registered(store)
    assert [job["id"] for job in store.claim("gone", "w1", 5).jobs] == ["again"]


def test_a_queue_with_a_running_job_or_a_schedule_is_kept(store):
    store.enqueue_many([spec("a", "work"), spec("b", "work"), spec("c", "scheduled")])
    (job,) = store.claim("work", "w1", 1).jobs
    store.client.hset(store.global_keys.crons, "nightly", "scheduled")
    store.delete_job("work", "b")
    store.delete_job("scheduled", "c")
    assert registered(store) == {"work", "scheduled"}
    assert finish(store, "w1", [Finish("work", job["entry"], "a", True, "1")])[0].accepted
