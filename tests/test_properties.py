"""Property-based tests on a real Redis: enqueue round trips, bad bytes in what a worker reads, and
the one-status-per-job invariant under any sequence of state changes."""

from __future__ import annotations

import datetime
import decimal
import functools
import math
import time
import uuid
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings
from django.core.serializers.json import DjangoJSONEncoder
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tempotask_django import get_job
from tempotask_django.storage.keys import CONSUMER_GROUP, STATUS_KEYS
from tempotask_django.storage.store import Finish, JobSpec
from tempotask_django.worker import Worker
from tests.testapp import tasks

pytestmark = pytest.mark.redis

Q = "default"
PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)

# -- values -------------------------------------------------------------------------------------
# Text includes lone surrogates (category Cs): json.loads produces them, UTF-8 cannot encode them.
any_text = st.text(st.characters(exclude_categories=()), max_size=30)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | any_text
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(any_text, inner, max_size=5),
    max_leaves=25,
)
django_scalars = (
    st.datetimes(timezones=st.none() | st.just(datetime.UTC))
    | st.dates()
    | st.times()
    | st.timedeltas()
    | st.decimals()
    | st.uuids()
)
foreign_scalars = (
    st.floats()  # NaN and infinity included
    | st.binary(max_size=10)
    | st.sets(st.integers(), max_size=3)
    | st.builds(object)
    | st.complex_numbers(allow_nan=False)
)
python_values = st.recursive(
    json_scalars | django_scalars | foreign_scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(any_text | st.integers() | st.tuples(st.integers()), inner, max_size=4)
    ),
    max_leaves=15,
)


def same(a: Any, b: Any) -> bool:
    """Equal with the same types throughout (1, 1.0 and True differ; so do 0.0 and -0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


def documented_form(value: Any) -> Any:
    """What the README says enqueue stores: Django's JSON encoder's strings for datetime, date, time,
    timedelta, Decimal and UUID; lists for tuples; everything else JSON-native as it is."""
    if isinstance(value, list | tuple):
        return [documented_form(item) for item in value]
    if isinstance(value, dict):
        return {key: documented_form(item) for key, item in value.items()}
    if isinstance(value, datetime.date | datetime.time | datetime.timedelta | decimal.Decimal | uuid.UUID):
        return DjangoJSONEncoder().default(value)
    return value


def snapshot(client: redis.Redis) -> dict[str, Any]:
    return {key: client.dump(key) for key in client.scan_iter(count=1000)}


@PROPERTY_SETTINGS
@given(value=json_values)
@example(value="\ud800")  # a lone surrogate: UTF-8 cannot hold it, a JSON escape can
@example(value=-0.0)
@example(value=2**80)
@example(value={"": [None, True, 1, 1.5, "é"]})
def test_json_values_round_trip_exactly(store, value):
    """Any JSON-native value (None, bool, int, finite float, str - lone surrogates included -,
    lists and string-keyed dicts of them) comes back from get_job() equal and of the same types,
    unless enqueue refuses it with a TypeError or ValueError (too large) and writes nothing."""
    before = snapshot(store.client)
    try:
        job_id = tasks.record.enqueue(value)
    except (TypeError, ValueError):
        assert snapshot(store.client) == before
        return
    assert same(get_job(job_id, Q).data, value)


@PROPERTY_SETTINGS
@given(value=python_values)
@example(value=functools.reduce(lambda inner, _: [inner], range(60), []))
@example(value=decimal.Decimal("NaN"))
@example(value={1: "a"})
def test_any_value_is_stored_in_its_documented_form_or_refused_untouched(store, value):
    """Any Python value either is stored as its documented JSON form (see documented_form) or is
    refused with a TypeError or ValueError raised by enqueue, leaving Redis exactly as it was."""
    before = snapshot(store.client)
    try:
        job_id = tasks.record.enqueue(value)
    except (TypeError, ValueError):
        assert snapshot(store.client) == before
        return
    assert same(get_job(job_id, Q).data, documented_form(value))


def test_nesting_deeper_than_python_can_walk_is_a_value_error(store):
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(ValueError, match="nested too deeply"):
        tasks.record.enqueue(deep)
    assert store.client.dbsize() == 0


# -- what a worker reads ------------------------------------------------------------------------
JOB_FIELDS = [
    "name", "queue", "data", "max_attempts", "retry_delay", "backoff", "priority", "attempt", "enqueued_at",
    "started_at", "finished_at", "run_at", "status", "id", "entry", "worker", "parent_id", "origin", "result",
]  # fmt: skip
nasty_bytes = st.binary(max_size=40) | st.sampled_from(
    [b"nan", b"inf", b"-inf", b"1e308", b"-1", b"99999999999999999999", b"1.5", b"", b"\xff\xfe", b"[" * 3000, b"{}"]
)


def raw_client() -> redis.Redis:
    """Sends and returns bytes unchanged, as another program would."""
    return redis.Redis.from_url(django_settings.TEMPOTASK["REDIS_URL"])


def run_worker_until_quiet(worker: Worker, done, timeout: float = 10.0) -> None:
    """Step the worker loop (run_once must never raise) until ``done()`` and nothing runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        worker.run_once(block=False)
        if worker.running_count == 0 and done():
            return
        time.sleep(0.005)
    pytest.fail("the worker did not settle")


def one_status(store, job_id: str) -> str | None:
    """The single status set holding ``job_id`` (asserting there is at most one), matching its record."""
    holding = [s for s in STATUS_KEYS if store.client.zscore(store.keys(Q).status(s), job_id) is not None]
    assert len(holding) <= 1, holding
    record = store.client.hget(store.keys(Q).job(job_id), "status")
    if holding:
        assert record == holding[0]
    return holding[0] if holding else None


@pytest.fixture
def worker(store):
    worker = Worker(concurrency=2)
    yield worker
    worker.request_stop()
    worker.shutdown()


@PROPERTY_SETTINGS
@given(fields=st.dictionaries(nasty_bytes, nasty_bytes, min_size=1, max_size=5))
@example(fields={b"job": b""})
@example(fields={b"": b""})
def test_no_stream_entry_makes_the_worker_loop_raise(store, worker, fields):
    """Whatever bytes an entry of P:{queue}:stream holds, the worker loop goes on: the entry is
    acknowledged and recorded as a failed job saying what was wrong, and good jobs still run."""
    store.client.flushdb()
    raw = raw_client()
    entry = raw.xadd(store.keys(Q).stream, fields).decode()
    good = tasks.add.enqueue({"a": 1, "b": 2})
    run_worker_until_quiet(worker, lambda: one_status(store, good) == "completed")
    assert store.client.xpending(store.keys(Q).stream, CONSUMER_GROUP)["pending"] == 0
    assert one_status(store, f"invalid-entry-{entry}") == "failed"
    raw.close()


@PROPERTY_SETTINGS
@given(damage=st.dictionaries(st.sampled_from(JOB_FIELDS), nasty_bytes, min_size=1, max_size=4), delayed=st.booleans())
def test_no_damaged_job_record_makes_the_worker_loop_raise(store, worker, damage, delayed):
    """Whatever bytes a job's fields hold (waiting or delayed), the loop goes on, the job ends in
    exactly one status with no lease left behind, and a good job queued after it still runs."""
    store.client.flushdb()
    job_id = tasks.add.enqueue({"a": 1, "b": 2}, attempts=2, retry_delay=0, delay=60 if delayed else None)
    raw = raw_client()
    raw.hset(store.keys(Q).job(job_id), mapping=damage)
    if delayed:
        raw.zadd(store.keys(Q).delayed, {job_id: 0})  # due now
    good = tasks.add.enqueue({"a": 2, "b": 2})
    run_worker_until_quiet(worker, lambda: one_status(store, good) == "completed")
    assert one_status(store, job_id) in ("completed", "failed", "delayed", "waiting")  # waiting: retried
    assert store.client.xpending(store.keys(Q).stream, CONSUMER_GROUP)["pending"] == 0
    raw.close()


@PROPERTY_SETTINGS
@given(members=st.dictionaries(nasty_bytes, st.floats(allow_nan=False), min_size=1, max_size=5))
def test_ids_without_a_record_in_the_waiting_set_are_dropped(store, worker, members):
    """Ids in the waiting set with no job record are dropped by the claim; nothing runs for them."""
    store.client.flushdb()
    raw = raw_client()
    raw.zadd(store.keys(Q).waiting, members)
    good = tasks.add.enqueue({"a": 2, "b": 2})
    done_before = worker.jobs_done
    waiting = store.keys(Q).waiting
    run_worker_until_quiet(worker, lambda: not store.client.zcard(waiting) and one_status(store, good) == "completed")
    assert worker.jobs_done == done_before + 1
    raw.close()


# -- the invariant ------------------------------------------------------------------------------
JOB_IDS = st.sampled_from(["a", "b", "c"])
WORKERS = st.sampled_from(["w1", "w2", "w3"])


class JobLifecycle(RuleBasedStateMachine):
    """Any sequence of enqueue / claim / complete / fail / retry / delete / reclaim / due, with
    running jobs' stream entries deleted while pending (XDEL) and the leases renewed and swept, keeps
    every job in exactly one status, the leases (pending entries) equal to the running jobs that
    did not lose theirs, and refuses every finish from a worker that does not hold the job's
    current lease; a sweep queues every job that lost its entry again (or fails it)."""

    store: Any = None  # set by the test below
    leases = Bundle("leases")

    def __init__(self) -> None:
        super().__init__()
        self.store.client.flushdb()
        self.current: dict[str, tuple[str, str]] = {}  # job id -> (worker, entry) holding it now
        self.deleted: set[str] = set()  # entries of running jobs deleted while pending (tombstones)
        self.orphans: set[str] = set()  # running jobs whose entry nobody holds any more: for the sweep

    def _took(self, worker: str, jobs: list[dict[str, str]]) -> list[tuple[str, str, str]]:
        taken = []
        for job in jobs:
            self.current[job["id"]] = (worker, job["entry"])
            taken.append((worker, job["id"], job["entry"]))
        return taken

    def _forget_unless_running(self) -> None:
        for job_id in list(self.current):
            if self.store.client.hget(self.store.keys(Q).job(job_id), "status") != "processing":
                self.deleted.discard(self.current.pop(job_id)[1])

    def _orphan(self, job_id: str) -> None:
        self.deleted.discard(self.current.pop(job_id)[1])
        self.orphans.add(job_id)

    def _pending(self, entry: str) -> bool:
        return bool(self.store.client.xpending_range(self.store.keys(Q).stream, CONSUMER_GROUP, entry, entry, 1))

    def _running(self, job_id: str) -> str:
        """``job_id`` when it runs, else the first running job (so these rules always act)."""
        return job_id if job_id in self.current else min(self.current)

    def _renew(self, worker: str) -> None:
        held = {entry: job_id for job_id, (owner, entry) in self.current.items() if owner == worker}
        lost = self.store.renew(Q, worker, list(held))
        assert sorted(lost) == sorted(entry for entry in held if entry in self.deleted)
        for entry in lost:
            self._orphan(held[entry])

    @rule(job_id=JOB_IDS, delayed=st.booleans())
    def enqueue(self, job_id, delayed):
        spec = JobSpec(id=job_id, name="add", queue=Q, data="{}", max_attempts=2, delay_ms=60_000 if delayed else 0)
        self.store.enqueue(spec)

    @rule(target=leases, worker=WORKERS)
    def claim(self, worker):
        return multiple(*self._took(worker, self.store.claim(Q, worker, 2).jobs))

    @rule(target=leases, worker=WORKERS, idle=st.booleans())
    def reclaim(self, worker, idle):
        result = self.store.reclaim(Q, worker, 2, idle=idle)
        self._forget_unless_running()  # poison pills went to failed
        for job_id, (_, entry) in list(self.current.items()):
            if entry in self.deleted and not self._pending(entry):
                self._orphan(job_id)  # the take-over dropped the tombstone (if its page reached it)
        assert not {job["entry"] for job in result.jobs} & self.deleted  # a tombstone never runs
        return multiple(*self._took(worker, result.jobs))

    @precondition(lambda self: self.current)
    @rule(job_id=JOB_IDS, then_renew=st.booleans())
    def delete_entry(self, job_id, then_renew):
        """Another program deletes a running job's stream entry (XDEL, XTRIM): it stays pending.
        With ``then_renew`` its worker renews its leases next."""
        worker, entry = self.current[self._running(job_id)]
        self.store.client.xdel(self.store.keys(Q).stream, entry)
        self.deleted.add(entry)
        if then_renew:
            self._renew(worker)

    @precondition(lambda self: self.current)
    @rule(job_id=JOB_IDS)
    def renew(self, job_id):
        """The worker running ``job_id`` renews all its leases."""
        self._renew(self.current[self._running(job_id)][0])

    @rule()
    def sweep(self):
        result = self.store.sweep_lost_entries(Q, page=2)
        swept = result.requeued + result.failed
        while result.offset:
            result = self.store.sweep_lost_entries(Q, result.offset, page=2)
            swept += result.requeued + result.failed
        assert swept == len(self.orphans)
        for job_id in self.orphans:
            job = self.store.get_job(Q, job_id)
            assert job.status in ("waiting", "failed") and job.errors[-1]["type"] in ("EntryLost", "PoisonPill")
        self.orphans.clear()

    @rule(lease=leases, succeeded=st.booleans(), retry=st.booleans())
    def finish(self, lease, succeeded, retry):
        worker, job_id, entry = lease
        owns = self.current.get(job_id) == (worker, entry)
        finish = Finish(Q, entry, job_id, succeeded, '"ok"' if succeeded else "{}", 0 if retry else -1)
        outcome = self.store.finish(worker, [finish])[0]
        assert outcome.accepted == owns, (lease, self.current, outcome)
        if outcome.accepted:
            del self.current[job_id]
            self.deleted.discard(entry)  # a tombstone's own worker may still finish it

    @rule(job_id=JOB_IDS)
    def retry(self, job_id):
        self.store.retry_job(Q, job_id)

    @rule(job_id=JOB_IDS)
    def delete(self, job_id):
        self.store.delete_job(Q, job_id)
        if job_id in self.current:
            self.deleted.discard(self.current.pop(job_id)[1])
        self.orphans.discard(job_id)

    @rule()
    def everything_due(self):
        delayed = self.store.keys(Q).delayed
        for job_id in self.store.client.zrange(delayed, 0, -1):
            self.store.client.zadd(delayed, {job_id: 0})

    @invariant()
    def each_job_is_in_exactly_one_status(self):
        for job_id in ("a", "b", "c"):
            status = one_status(self.store, job_id)
            exists = self.store.client.exists(self.store.keys(Q).job(job_id))
            assert (status is not None) == bool(exists), job_id

    @invariant()
    def leases_are_the_running_jobs(self):
        """Every running job holds a pending entry, except the orphans (waiting for the sweep); the
        stream holds those entries, except the tombstones (deleted, still pending)."""
        keys = self.store.keys(Q)
        running = self.store.client.zcard(keys.processing)
        entries, pending = 0, 0
        if self.store.client.exists(keys.stream):
            entries = self.store.client.xlen(keys.stream)
            pending = self.store.client.xpending(keys.stream, CONSUMER_GROUP)["pending"]
        assert pending == running - len(self.orphans)
        assert entries == pending - len(self.deleted)
        assert sorted([*self.current, *self.orphans]) == sorted(self.store.client.zrange(keys.processing, 0, -1))
        assert self.deleted <= {entry for _, entry in self.current.values()}


def test_every_job_is_in_exactly_one_status(store):
    store.settings = type(store.settings)(**{**store.settings.__dict__, "stalled_timeout": 0.0, "max_deliveries": 3})
    JobLifecycle.store = store
    run_state_machine_as_test(
        JobLifecycle,
        settings=settings(
            max_examples=60, stateful_step_count=30, deadline=None, suppress_health_check=list(HealthCheck)
        ),
    )
