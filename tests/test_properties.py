"""Property-based tests on a real Redis: enqueue round trips, bad bytes in what a worker reads, and
the one-status-per-job invariant under any sequence of state changes."""

from __future__ import annotations

import datetime
import decimal
import functools
import json
import math
import time
import uuid
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings
from django.core.serializers.json import DjangoJSONEncoder
from hypothesis import HealthCheck, event, example, given, settings
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
from tempotask_django.job import JobStatus
from tempotask_django.storage.keys import CONSUMER_GROUP
from tempotask_django.storage.records import Finish, JobSpec
from tempotask_django.worker import Worker
from tests.helpers import finish as finish_attempts
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
    """What docs/tasks.md says enqueue stores: Django's JSON encoder's strings for datetime, date, time,
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


# MAX_PAYLOAD_BYTES in the value tests: small, so that generated values fall on both sides of it.
SMALL_PAYLOAD_BYTES = 250
# Nesting every enqueue accepts; deeper than Python can walk is refused (see the test below).
SHALLOW = 100
SPECIAL_TYPES = (datetime.date, datetime.time, datetime.timedelta, decimal.Decimal, uuid.UUID)


def problems(value: Any) -> set[type[Exception]]:
    """The errors docs/tasks.md promises for what ``value`` holds that JSON cannot carry: TypeError for
    a value of another type or a dict key that is not a string, ValueError for NaN or infinity."""
    if value is None or isinstance(value, (bool, int, str, *SPECIAL_TYPES)):
        return set()
    if isinstance(value, float):
        return set() if math.isfinite(value) else {ValueError}
    if isinstance(value, list | tuple):
        return set().union(*map(problems, value))
    if isinstance(value, dict):
        found = set().union(*map(problems, value.values()))
        return found | ({TypeError} if any(not isinstance(key, str) for key in value) else set())
    return {TypeError}


def depth(value: Any) -> int:
    if isinstance(value, list | tuple | dict):
        items = value.values() if isinstance(value, dict) else value
        return 1 + max(map(depth, items), default=0)
    return 0


def json_size_bounds(value: Any) -> tuple[int, int]:
    """The fewest and the most bytes this JSON value takes as JSON text: compact UTF-8 (a lone
    surrogate counted as its 3 bytes), and spaced with every non-ASCII character escaped."""
    compact = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")
    return len(compact), len(json.dumps(value, ensure_ascii=True).encode())


def check_enqueue(store, value: Any, stored_form: Any) -> None:
    """Enqueue ``value``: a plain JSON value (``stored_form``: what it becomes) small and shallow
    enough must round-trip exactly; a value JSON cannot carry must be refused with the promised
    error; one larger than MAX_PAYLOAD_BYTES with a ValueError. A refusal leaves Redis as it was."""
    before = snapshot(store.client)
    refusals, must_refuse = problems(value), True
    if not refusals:
        smallest, largest = json_size_bounds(stored_form)
        must_refuse = smallest > SMALL_PAYLOAD_BYTES
        if largest > SMALL_PAYLOAD_BYTES or depth(value) > SHALLOW:
            refusals = {ValueError}  # too large by some encodings only, or deep: then either outcome
    event("must round-trip" if not refusals else "must be refused" if must_refuse else "either")
    try:
        job_id = tasks.record.enqueue(value)
    except (TypeError, ValueError) as exc:
        assert type(exc) in refusals, f"{type(exc).__name__}: {exc}"
        assert snapshot(store.client) == before
        return
    assert not (refusals and must_refuse), f"enqueue accepted a value it must refuse with {refusals}"
    assert same(get_job(job_id, Q).data, stored_form)


@pytest.fixture
def small_payloads(settings, store):
    settings.TEMPOTASK = {**settings.TEMPOTASK, "MAX_PAYLOAD_BYTES": SMALL_PAYLOAD_BYTES}


@PROPERTY_SETTINGS
@given(value=json_values)
@example(value="\ud800")  # a lone surrogate: UTF-8 cannot hold it, a JSON escape can
@example(value=-0.0)
@example(value=2**80)
@example(value={"": [None, True, 1, 1.5, "é"]})
@example(value="x" * SMALL_PAYLOAD_BYTES)  # larger than MAX_PAYLOAD_BYTES once quoted
def test_json_values_round_trip_exactly(store, small_payloads, value):
    """Any JSON-native value (None, bool, int, finite float, str - lone surrogates included -,
    lists and string-keyed dicts of them) within MAX_PAYLOAD_BYTES comes back from get_job() equal
    and of the same types; a larger one is refused with a ValueError and writes nothing."""
    check_enqueue(store, value, value)


@PROPERTY_SETTINGS
@given(value=python_values)
@example(value=functools.reduce(lambda inner, _: [inner], range(60), []))
@example(value=decimal.Decimal("NaN"))
@example(value={1: "a"})
@example(value={"x": [1.5, float("-inf")]})
@example(value=(b"x",))
@example(value=[float("nan"), b"x"])  # two problems: either error will do
def test_any_value_is_stored_in_its_documented_form_or_refused_untouched(store, small_payloads, value):
    """Any Python value either is stored as its documented JSON form (see documented_form) or, when
    it holds something JSON cannot carry or is too large, is refused with the error docs/tasks.md
    promises for that (TypeError or ValueError), leaving Redis exactly as it was."""
    check_enqueue(store, value, documented_form(value) if not problems(value) else None)


def test_nesting_deeper_than_python_can_walk_is_a_value_error(store):
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(ValueError, match="nested too deeply"):
        tasks.record.enqueue(deep)
    assert store.client.dbsize() == 0


# -- what a worker reads ------------------------------------------------------------------------
JOB_FIELDS = [
    "name",
    "queue",
    "data",
    "max_attempts",
    "retry_delay",
    "backoff",
    "priority",
    "attempt",
    "enqueued_at",
    "started_at",
    "finished_at",
    "run_at",
    "status",
    "id",
    "entry",
    "worker",
    "parent_id",
    "origin",
    "result",
]
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
    holding = [s for s in JobStatus if store.client.zscore(store.keys(Q).status(s), job_id) is not None]
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


GOOD_JOB = "good-job"
# Field names and values of foreign stream entries: any bytes, and often the names a job's entry
# uses, with the id of the good job (an entry naming an existing job) or of none.
entry_names = nasty_bytes | st.sampled_from([b"job", b"name", b"data", b"id", b"entry", b"status"])
entry_values = nasty_bytes | st.sampled_from([GOOD_JOB.encode(), b"no-such-job"])


@PROPERTY_SETTINGS
@given(fields=st.dictionaries(entry_names, entry_values, min_size=1, max_size=5))
@example(fields={b"job": b""})
@example(fields={b"": b""})
@example(fields={b"job": GOOD_JOB.encode()})
@example(fields={b"job": b"no-such-job", b"name": b"add", b"data": b"{}"})
def test_no_stream_entry_makes_the_worker_loop_raise(store, worker, fields):
    """Whatever bytes an entry of P:{queue}:stream holds, the worker loop goes on and the entry is
    acknowledged. One naming an existing job is stale for it and dropped (that job runs once, under
    its own entry); any other is recorded as a failed job saying what was wrong."""
    store.client.flushdb()
    raw = raw_client()
    good = tasks.add.enqueue({"a": 1, "b": 2}, job_id=GOOD_JOB)
    entry = raw.xadd(store.keys(Q).stream, fields).decode()
    run_worker_until_quiet(worker, lambda: one_status(store, good) == "completed")
    assert store.client.xpending(store.keys(Q).stream, CONSUMER_GROUP)["pending"] == 0
    job = get_job(good, Q)
    assert (job.result, job.attempt) == (3, 1)
    record = get_job(f"invalid-entry-{entry}", Q)
    if fields.get(b"job") == GOOD_JOB.encode():
        assert record is None
    else:
        assert one_status(store, record.id) == "failed"
        reason = "names a job that does not exist" if b"job" in fields else 'no "job" field'
        assert reason in record.errors[-1]["message"]
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
            job = self.store.inspect.get_job(Q, job_id)
            assert job.status in ("waiting", "failed") and job.errors[-1]["type"] in ("EntryLost", "PoisonPill")
        self.orphans.clear()

    @rule(lease=leases, succeeded=st.booleans(), retry=st.booleans())
    def finish(self, lease, succeeded, retry):
        worker, job_id, entry = lease
        owns = self.current.get(job_id) == (worker, entry)
        finish = Finish(Q, entry, job_id, succeeded, '"ok"' if succeeded else "{}", 0 if retry else -1)
        outcome = finish_attempts(self.store, worker, [finish])[0]
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
