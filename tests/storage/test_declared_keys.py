"""Every script declares every key it touches in KEYS (the scripting contract; Redis Cluster and
other Redis-compatible servers rely on it).

Two checks: no script text builds a key name (the queue's key base is never concatenated), and the
scripts run here through a checker (tests/storage/declared_keys.py) that stops a script at the
first command naming an undeclared key, on the real Redis, over every path: each store operation,
the limits, the history trim, take-overs, sweeps, invalid entries, the cron scripts and the job
life-cycle state machine.
"""

from __future__ import annotations

import json
import re
import time
from importlib import resources

import pytest

from tempotask_django.storage.connection import get_default_store
from tempotask_django.storage.keys import CONSUMER_GROUP
from tempotask_django.storage.records import Finish, JobSpec
from tests.helpers import finish
from tests.storage.declared_keys import strict_scripts

pytestmark = pytest.mark.redis

Q = "default"
ERROR = json.dumps({"attempt": 1, "type": "ValueError", "message": "x", "traceback": ""})


def spec(job_id: str, **options) -> JobSpec:
    return JobSpec(id=job_id, name="add", queue=Q, data=json.dumps({"a": 1}), **options)


@pytest.fixture
def strict(redis_client, monkeypatch, settings):
    """The default store, its scripts checked; a short stalled timeout and a small history."""
    settings.TEMPOTASK = {**settings.TEMPOTASK, "MAX_JOBS_PER_STATUS": 3}
    with strict_scripts(monkeypatch):
        store = get_default_store()
        store.settings = type(store.settings)(**{**store.settings.__dict__, "stalled_timeout": 0.0})
        yield store


def lua_files() -> list[str]:
    lua = resources.files("tempotask_django.storage") / "lua"
    return sorted(path.name for path in lua.iterdir() if path.name.endswith(".lua"))


@pytest.mark.parametrize("name", lua_files())
def test_no_script_builds_a_key_name(name):
    text = (resources.files("tempotask_django.storage") / "lua" / name).read_text()
    code = "\n".join(line.split("--", 1)[0] for line in text.splitlines())
    building = re.search(r"BASE\s*\.\.|\.\.\s*BASE|BUILDS_KEYS", code)
    assert not building, f"{name} builds a key name from the queue's key base"


def test_producer_and_admin_scripts_touch_only_declared_keys(strict):
    store = strict
    kids = [spec("kid1", parent_id="p1"), spec("kid2", parent_id="p1")]
    store.enqueue_many([spec("p1"), *kids, spec("d", delay_ms=60_000)])
    store.enqueue(spec("p1"))  # refused: active
    assert store.append_log(Q, "p1", json.dumps("hello"))
    assert store.retry_job(Q, "d") == "delayed"
    assert store.cancel_job(Q, "kid2").ended
    assert store.retry_job(Q, "kid2") == "cancelled"
    assert store.delete_job(Q, "kid1") == "waiting"
    stats = store.inspect.queue_stats(Q)
    assert stats.waiting == 3
    jobs = store.claim(Q, "w1", 10).jobs
    finish(store, "w1", [Finish(Q, job["entry"], job["id"], True, "1") for job in jobs])
    store.enqueue(spec("kid2", parent_id="other"))  # replaces the finished kid2 (its old parent: p1)
    assert store.client.sismember(store.keys(Q).children("other"), "kid2")
    assert not store.client.sismember(store.keys(Q).children("p1"), "kid2")
    assert store.purge(Q, "completed") == 2
    store.inspect.minute_totals([Q], 2)


def test_worker_scripts_touch_only_declared_keys(strict):
    store = strict
    store.enqueue_many([spec(f"j{n}", max_attempts=3) for n in range(6)])
    jobs = store.claim(Q, "w1", 6).jobs
    by_id = {job["id"]: job for job in jobs}
    assert store.set_progress(Q, "j0", by_id["j0"]["entry"], json.dumps({"done": 1}))
    store.cancel_job(Q, "j1")  # processing: requested
    lost, cancelled = store.renew_leases(Q, "w1", [job["entry"] for job in jobs])
    assert lost == [] and cancelled == [by_id["j1"]["entry"]]
    outcomes = finish(
        store,
        "w1",
        [
            Finish(Q, by_id["j0"]["entry"], "j0", True, "1"),
            Finish(Q, by_id["j1"]["entry"], "j1", False, ERROR, cancelled=True),
            Finish(Q, by_id["j2"]["entry"], "j2", False, ERROR, 0),
            Finish(Q, by_id["j3"]["entry"], "j3", False, ERROR, 60_000),
            Finish(Q, by_id["j4"]["entry"], "j4", False, ERROR, -1),
        ],
    )
    assert [outcome.accepted for outcome in outcomes] == [True] * 5
    assert store.give_back("w1", [(Q, by_id["j5"]["entry"], "j5")]) == 1
    store.forget_consumers(Q, 0)
    assert store.retry_failed(Q) == 1


def test_take_overs_and_sweeps_touch_only_declared_keys(strict):
    store = strict
    store.enqueue_many([spec(f"s{n}", parent_id="p") for n in range(4)])
    jobs = store.claim(Q, "dead", 4).jobs
    store.client.xdel(store.keys(Q).stream, jobs[0]["entry"])
    taken = store.reclaim(Q, "w2", 4).jobs
    assert len(taken) == 3
    store.sweep_lost_entries(Q)
    assert store.inspect.get_job(Q, jobs[0]["id"]).status == "waiting"
    store.client.xadd(store.keys(Q).stream, {"garbage": "1"})  # a foreign entry: recorded as a failed job
    store.claim(Q, "w3", 4)


def test_history_trims_touch_only_declared_keys(strict):
    store = strict
    for n in range(8):
        store.enqueue(spec(f"h{n}", parent_id="p" if n % 2 else ""))
        (job,) = store.claim(Q, "w1", 1).jobs
        finish(store, "w1", [Finish(Q, job["entry"], job["id"], n % 3 != 0, "1" if n % 3 else ERROR)])
    store.sweep_lost_entries(Q)
    assert store.inspect.count_jobs(Q, "completed") <= 3
    assert store.inspect.count_jobs(Q, "failed") <= 3
    assert store.client.scard(store.keys(Q).children("p")) <= 3


def test_limit_scripts_touch_only_declared_keys(strict):
    store = strict

    def limited(job_id: str, limit: str, **options) -> JobSpec:
        return spec(job_id, limit=limit, **options)

    store.enqueue_many(
        [limited(f"c{n}", "capped", max_concurrency=1) for n in range(3)]
        + [limited(f"r{n}", "rated tenant", rate="1/60000") for n in range(3)]
    )
    jobs = store.claim(Q, "w1", 6).jobs
    assert sorted(job["id"] for job in jobs) == ["c0", "r0"]
    assert store.cancel_job(Q, "c2").ended  # parked
    store.delete_job(Q, "r1")  # parked
    capped = next(job for job in jobs if job["id"] == "c0")
    finish(store, "w1", [Finish(Q, capped["entry"], "c0", True, "1")])
    (c1,) = store.claim(Q, "w1", 6).jobs
    assert c1["id"] == "c1"
    assert store.delete_job(Q, "c1") == "processing"  # frees its slot


def test_the_job_life_cycle_touches_only_declared_keys(strict):
    from tests.test_properties import test_every_job_is_in_exactly_one_status

    test_every_job_is_in_exactly_one_status(strict)


def test_invalid_entries_and_stats_touch_only_declared_keys(strict):
    store = strict
    store.enqueue(spec("x"))
    store.client.xgroup_create(store.keys(Q).stream, CONSUMER_GROUP, "0", mkstream=True)
    store.client.xadd(store.keys(Q).stream, {"job": "nobody"})
    assert [job["id"] for job in store.claim(Q, "w1", 2).jobs] == ["x"]
    assert store.inspect.queue_stats(Q).failed == 1  # the entry naming no job


def test_a_claim_whose_expected_jobs_another_worker_took_claims_again_at_once(strict):
    from tempotask_django.storage.store import RedisStore

    store = strict
    other = RedisStore(store.client, store.settings)
    store.enqueue_many([spec(f"q{n}") for n in range(8)])
    assert [job["id"] for job in store.claim(Q, "w1", 2).jobs] == ["q0", "q1"]  # names q2..q3 for the next
    assert [job["id"] for job in other.claim(Q, "w2", 4).jobs] == ["q2", "q3", "q4", "q5"]
    # w1 expected q2 and q3: the claim finds them gone, names q6 and q7, and the store claims again.
    assert [job["id"] for job in store.claim(Q, "w1", 2).jobs] == ["q6", "q7"]


def test_a_claim_on_a_paused_queue_keeps_the_entries_it_could_not_start(strict):
    store = strict
    store.enqueue(spec("x"))
    store.client.xgroup_create(store.keys(Q).stream, CONSUMER_GROUP, "0", mkstream=True)
    entry = store.client.xadd(store.keys(Q).stream, {"job": "nobody"})
    store.pause_queue(Q)
    store.claim(Q, "w1", 2)
    store.resume_queue(Q)
    assert [job["id"] for job in store.claim(Q, "w1", 2).jobs] == ["x"]
    assert store.inspect.get_job(Q, f"invalid-entry-{entry}").status == "failed"


def test_a_trim_that_knows_some_of_the_oldest_jobs_deletes_those_and_leaves_the_rest(strict):
    """Other callers trim meanwhile, so the oldest jobs change between a trim's ask and its call
    sent again: it deletes the jobs whose keys it has, never asking for ever."""
    store = strict
    for n in range(5):
        store.enqueue(spec(f"h{n}"))
        (job,) = store.claim(Q, "w1", 1).jobs
        # Completed without the trim a worker's finish sends after it.
        args = [CONSUMER_GROUP, "w1", 100, job["entry"], job["id"], "1"]
        store.scripts.run("complete", Q, args, [store.keys(Q).job(job["id"])])
    keys = store.keys(Q)
    assert store.client.zcard(keys.completed) == 5
    known = [keys.job("h1"), keys.logs("h1"), keys.errors("h1"), keys.children("h1")]
    assert store.scripts.run("trim", Q, [3, 200], known) == [1, []]
    assert store.client.zrange(keys.completed, 0, -1) == ["h0", "h2", "h3", "h4"]
    assert store.trim_history(Q) == 0
    assert store.client.zrange(keys.completed, 0, -1) == ["h2", "h3", "h4"]


def test_a_take_over_while_workers_keep_stalling_takes_the_jobs_it_knows_instead_of_asking_for_ever(strict):
    """Each call sent again with the keys it asked for finds one more stalled job (a busy queue):
    it takes the jobs whose keys it has and leaves the newcomer to the next pass."""
    store = strict
    stalled = iter(range(100))
    sending = store.scripts._send

    def stall() -> None:
        store.enqueue(spec(f"s{next(stalled)}"))
        assert store.claim(Q, "dead", 1).jobs

    def churning(calls, unsettled=None):
        if any(call[0] == "reclaim" for call in calls):
            stall()
        return sending(calls, unsettled)

    stall()
    store.scripts._send = churning
    try:
        taken = store.reclaim(Q, "w2", 100).jobs
    finally:
        store.scripts._send = sending
    assert "s0" in {job["id"] for job in taken}


def test_a_take_over_fails_a_stalled_foreign_entry_whose_job_field_names_no_job(strict):
    """A worker that read a foreign entry and died before starting it (a crash job killed it): the
    take-over must fail the entry as invalid, not stop on the key of an id no caller can name (the
    worker loop raised on it every pass, and the entry stayed pending for ever)."""
    store = strict
    store.enqueue(spec("x"))
    store.client.xgroup_create(store.keys(Q).stream, CONSUMER_GROUP, "0", mkstream=True)
    entry = store.client.xadd(store.keys(Q).stream, {"job": "not a job id!"})
    store.client.xreadgroup(CONSUMER_GROUP, "dead", {store.keys(Q).stream: ">"}, count=10)
    time.sleep(store.settings.stalled_timeout + 0.1)
    store.reclaim(Q, "w2", 10)
    assert store.inspect.get_job(Q, f"invalid-entry-{entry}").status == "failed"
