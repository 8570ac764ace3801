"""Ids shaped to collide never share a key: the key map is injective (no Redis), and on a real Redis,
enqueue, claim, log, complete, fail, retry, delete and history trimming of such jobs keep each job in
exactly one status and never touch a key of another job."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tempotask_django.job import JobStatus
from tempotask_django.storage.connection import get_default_store, reset_default_store
from tempotask_django.storage.keys import GlobalKeys, QueueKeys
from tempotask_django.storage.records import Finish, JobSpec
from tempotask_django.validation import JOB_ID_PATTERN, NAME_PATTERN
from tests.helpers import finish

Q = "default"
HISTORY = 2  # MAX_JOBS_PER_STATUS: finishing jobs trims others' records
# Pieces of ids: key kinds, status names, separators and the hash-tag braces (these only in the key
# map test: job ids cannot hold them, queue names neither).
KINDS = (
    "job",
    "logs",
    "errors",
    "children",
    "cron",
    "cron_history",
    "stats",
    "reply",
    "worker",
    "beat",
    "waiting",
    "queues",
    "listed",
)
PIECES = ("a", "b", ":", "::", "=", "-", ".", "{", "}", "", *KINDS)
ids = st.lists(st.sampled_from(PIECES), max_size=6).map("".join)
job_ids = ids.filter(lambda text: bool(JOB_ID_PATTERN.match(text)))
QUEUES = ("a", "b", "a.b", "job", "errors", "default", "x-1")

PER_ID_KEYS = {
    "job": QueueKeys.job,
    "logs": QueueKeys.logs,
    "errors": QueueKeys.errors,
    "children": QueueKeys.children,
    "cron": QueueKeys.cron,
    "cron_history": QueueKeys.cron_history,
    "reply": QueueKeys.reply,
}


def every_key(queue: str, some_id: str) -> dict[tuple[str, str, str], str]:
    """Every key tempotask can build from ``queue`` and ``some_id``, by (kind, queue, id)."""
    keys, global_keys = QueueKeys("P", queue), GlobalKeys("P")
    built = {(kind, queue, some_id): build(keys, some_id) for kind, build in PER_ID_KEYS.items()}
    built[("worker", "", some_id)] = global_keys.worker(some_id)
    built[("beat", "", some_id)] = global_keys.beat(some_id)
    for status in JobStatus:
        built[(str(status), queue, "")] = keys.status(status)
    for fixed in ("stream", "wake", "seq", "paused", "metrics", "listed", "minutes", "limited", "qrate"):
        built[(fixed, queue, "")] = getattr(keys, fixed)
    for fixed in ("queues", "workers", "crons", "runtime_crons", "crons_version", "beats"):
        built[(fixed, "", "")] = getattr(global_keys, fixed)
    return built


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(QUEUES), ids | st.text(max_size=8)), min_size=2, max_size=6), st.data())
def test_no_two_kinds_or_ids_ever_build_the_same_key(named, data):
    """Ids may hold anything (``:``, ``{``, ``}``, kind names, other ids plus a separator): still one key each."""
    assert all(NAME_PATTERN.match(queue) for queue in QUEUES)
    base_queue, base_id = named[0]
    suffix = data.draw(st.sampled_from([f":{kind}" for kind in KINDS] + [":", "::"]))
    named += [(base_queue, base_id + suffix), (base_queue, suffix.lstrip(":") + ":" + base_id)]
    seen: dict[str, tuple[str, str, str]] = {}
    for queue, some_id in named:
        for owner, key in every_key(queue, some_id).items():
            assert seen.setdefault(key, owner) == owner, f"{owner} and {seen[key]} share {key}"


# -- on a real Redis ------------------------------------------------------------------------------


@dataclass
class Model:
    """What each job should be: status, parent, log lines, number of errors; absent once deleted/trimmed."""

    status: dict[str, str] = field(default_factory=dict)
    parent: dict[str, str] = field(default_factory=dict)
    logs: dict[str, list[str]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    entry: dict[str, str] = field(default_factory=dict)
    # child -> parent for the children listed in their parent's children set: a job's set goes when
    # the job goes (deleted, trimmed, replaced by a new job with its id).
    listed: dict[str, str] = field(default_factory=dict)

    def forget(self, job_id: str) -> None:
        if job_id in self.status:  # its children set goes with it
            self.listed = {child: of for child, of in self.listed.items() if of != job_id}
        for values in (self.status, self.parent, self.logs, self.errors, self.entry, self.listed):
            values.pop(job_id, None)


OPERATIONS = ("enqueue", "enqueue", "claim", "log", "complete", "fail", "retry", "delete")
operations = st.lists(
    st.tuples(st.sampled_from(OPERATIONS), st.integers(0, 99), st.integers(0, 99)), min_size=5, max_size=40
)


def colliding_ids(base: list[str]) -> list[str]:
    """``base`` plus ids shaped to name the keys of the first ones: ``<id>:errors``, ``errors:<id>``..."""
    derived = [f"{job_id}{sep}{kind}" for job_id in base[:2] for kind in KINDS[:4] for sep in (":", "::")]
    derived += [f"{kind}:{job_id}" for job_id in base[:2] for kind in KINDS[:4]]
    derived += [f"{base[0]}:{other}" for other in base[1:3]]
    wanted = [job_id for job_id in dict.fromkeys(base + derived) if JOB_ID_PATTERN.match(job_id)]
    return wanted


class Run:
    """Applies operations to the store and to the model, checking both after each one."""

    def __init__(self, store, job_ids: list[str]) -> None:
        self.store, self.keys, self.ids = store, store.keys(Q), job_ids
        self.model = Model()
        self.lines = 0

    def own_keys(self, job_id: str) -> set[str]:
        """The keys an operation on ``job_id`` may change: its own (its children set included), and
        its parent's children set."""
        owned = {self.keys.job(job_id), self.keys.logs(job_id), self.keys.errors(job_id), self.keys.children(job_id)}
        for parent in (self.model.parent.get(job_id), self.store.client.hget(self.keys.job(job_id), "parent_id")):
            if parent:
                owned.add(self.keys.children(parent))
        return owned

    def parent_for(self, choice: int) -> str:
        return self.ids[choice % len(self.ids)] if choice % 3 else ""

    def shared_keys(self) -> set[str]:
        keys = self.keys
        return (
            {keys.status(status) for status in JobStatus}
            | {keys.stream, keys.wake, keys.seq, keys.metrics, keys.listed}
            | {self.store.global_keys.queues}
        )

    def snapshot(self) -> dict[str, bytes]:
        client = self.store.client
        # Per-minute counters, and the replies scripts keep for a resend (deleted with the next call).
        skipped = (self.keys.minutes, self.keys.reply(""))
        return {key: client.dump(key) for key in client.scan_iter(count=1000) if not key.startswith(skipped)}

    def apply(self, operation: str, first: int, second: int) -> None:
        job_id = self.ids[first % len(self.ids)]
        allowed = self.own_keys(job_id)
        history = {other for other, status in self.model.status.items() if status in ("completed", "failed")}
        for other in history:  # a finish may trim any finished job
            allowed |= self.own_keys(other)
        if operation == "enqueue" and self.parent_for(second):
            allowed.add(self.keys.children(self.parent_for(second)))
        if operation == "claim":
            for other, status in self.model.status.items():
                if status == "waiting":
                    allowed |= self.own_keys(other)
        before = self.snapshot()
        getattr(self, operation)(job_id, second)
        after = self.snapshot()
        changed = {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}
        touched = changed - self.shared_keys() - allowed
        assert not touched, f"{operation} {job_id!r} touched {sorted(touched)}"
        self.drop_trimmed()
        self.check()

    # -- operations ------------------------------------------------------------------------------
    def enqueue(self, job_id: str, choice: int) -> None:
        parent = self.parent_for(choice)
        delay = 3_600_000 if choice % 4 == 1 else 0
        spec = JobSpec(id=job_id, name="noop", queue=Q, data="{}", parent_id=parent, delay_ms=delay)
        added, status = self.store.enqueue(spec)
        current = self.model.status.get(job_id)
        if current in ("waiting", "delayed", "processing"):
            assert (added, status) == (False, current)
            return
        assert (added, status) == (True, "delayed" if delay else "waiting")
        self.model.forget(job_id)
        self.model.status[job_id] = status
        if parent:
            self.model.parent[job_id] = parent
            self.model.listed[job_id] = parent

    def claim(self, job_id: str, choice: int) -> None:
        claimed = self.store.claim(Q, "w1", 100).jobs
        assert {job["id"] for job in claimed} == {i for i, status in self.model.status.items() if status == "waiting"}
        for job in claimed:
            self.model.status[job["id"]] = "processing"
            self.model.entry[job["id"]] = job["entry"]

    def log(self, job_id: str, choice: int) -> None:
        self.lines += 1
        line = f"line {self.lines} of {job_id}"
        written = self.store.append_log(Q, job_id, json.dumps(line))
        assert written == (job_id in self.model.status)
        if written:
            self.model.logs.setdefault(job_id, []).append(line)

    def _finish(self, job_id: str, finished: Finish | None) -> str | None:
        if finished is None:
            return None
        (outcome,) = finish(self.store, "w1", [finished])
        assert outcome.accepted, outcome
        self.model.entry.pop(job_id)
        return outcome.status

    def _running(self, job_id: str, succeeded: bool, payload: str, delay: int = -1) -> Finish | None:
        if self.model.status.get(job_id) != "processing":
            return None
        return Finish(Q, self.model.entry[job_id], job_id, succeeded, payload, delay)

    def complete(self, job_id: str, choice: int) -> None:
        if self._finish(job_id, self._running(job_id, True, "1")):
            self.model.status[job_id] = "completed"

    def fail(self, job_id: str, choice: int, delay: int = -1) -> None:
        error = json.dumps({"attempt": 1, "type": "E", "message": job_id, "traceback": "", "t": 0})
        status = self._finish(job_id, self._running(job_id, False, error, delay))
        if status:
            assert status == {-1: "failed", 0: "waiting"}.get(delay, "delayed")
            self.model.status[job_id] = status
            self.model.errors[job_id] = self.model.errors.get(job_id, 0) + 1

    def retry(self, job_id: str, choice: int) -> None:
        self.fail(job_id, choice, delay=0 if choice % 2 else 3_600_000)

    def delete(self, job_id: str, choice: int) -> None:
        assert self.store.delete_job(Q, job_id) == self.model.status.get(job_id)
        self.model.forget(job_id)

    # -- checks ------------------------------------------------------------------------------------
    def statuses(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for status in JobStatus:
            for job_id in self.store.client.zrange(self.keys.status(status), 0, -1):
                found.setdefault(job_id, []).append(str(status))
        return found

    def drop_trimmed(self) -> None:
        """Finished jobs beyond HISTORY were trimmed: only finished ones, and only the oldest."""
        listed = self.statuses()
        for job_id in [i for i in self.model.status if i not in listed]:
            assert self.model.status[job_id] in ("completed", "failed"), job_id
            self.model.forget(job_id)

    def check(self) -> None:
        client, keys, model = self.store.client, self.keys, self.model
        assert {i: [s] for i, s in model.status.items()} == self.statuses()  # each job in exactly one status
        for status in ("completed", "failed"):
            assert client.zcard(keys.status(status)) <= HISTORY
        for job_id, status in model.status.items():
            record = client.hgetall(keys.job(job_id))
            assert (record.get("id"), record.get("status"), record.get("parent_id", "")) == (
                job_id,
                status,
                model.parent.get(job_id, ""),
            )
            logs = [json.loads(line)["message"] for line in client.lrange(keys.logs(job_id), 0, -1)]
            assert logs == model.logs.get(job_id, [])
            errors = [json.loads(line)["message"] for line in client.lrange(keys.errors(job_id), 0, -1)]
            assert errors == [job_id] * model.errors.get(job_id, 0)
        for key in client.scan_iter(count=1000):
            for prefix, kind in ((keys.job_prefix, "hash"), (keys.logs_prefix, "list"), (keys.errors_prefix, "list")):
                if key.startswith(prefix):
                    assert key[len(prefix) :] in model.status and client.type(key) == kind, key
        for job_id, parent in model.listed.items():
            assert client.sismember(keys.children(parent), job_id), (parent, job_id)
        for parent in {*model.parent.values()}:
            listed = {child for child, of in model.listed.items() if of == parent}
            assert client.smembers(keys.children(parent)) == listed, parent  # trimmed children left it


@pytest.mark.redis
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(job_ids.filter(bool), min_size=2, max_size=4, unique=True), operations)
def test_jobs_with_colliding_ids_keep_their_own_keys(redis_client, django_settings_history, base_ids, steps):
    redis_client.flushdb()
    reset_default_store()
    run = Run(get_default_store(), colliding_ids(base_ids))
    for operation, first, second in steps:
        run.apply(operation, first, second)
    run.apply("claim", 0, 0)
    for job_id in list(run.model.status):
        run.apply("log", run.ids.index(job_id), 0)
        run.apply("fail", run.ids.index(job_id), 0)
    for job_id in list(run.model.status):
        run.apply("delete", run.ids.index(job_id), 0)
    for prefix in (run.keys.job_prefix, run.keys.logs_prefix, run.keys.errors_prefix):
        assert not list(redis_client.scan_iter(f"{prefix}*"))


@pytest.fixture
def django_settings_history(settings):
    """A short history, so that finishing jobs trims others."""
    settings.TEMPOTASK = {**settings.TEMPOTASK, "MAX_JOBS_PER_STATUS": HISTORY}
    reset_default_store()
    yield
    reset_default_store()
