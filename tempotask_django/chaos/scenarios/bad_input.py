"""Bad input mixed with good jobs: foreign stream entries, corrupted job records, ids without a record,
and jobs that kill their worker every time. Good jobs all run; bad input ends in failed with a reason;
no worker process dies except those the crash jobs kill.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from tempotask_django.chaos.lab import QUEUE, Lab
from tempotask_django.chaos.ledger import by_job
from tempotask_django.chaos.report import Result
from tempotask_django.chaos.scenarios import scenario
from tempotask_django.chaos.workload import crashed_children, ended_jobs, stop_figures
from tempotask_django.storage.keys import CONSUMER_GROUP

MAX_DELIVERIES = 3
# Actions fed to Redis between two checks of progress.
FEED_CHUNK = 50


@dataclass(frozen=True)
class Corruption:
    """Fields written over a job's record while it is delayed (no worker holds it yet), and how the
    job must end: failed with ``reason`` in its error's message, or completed when ``reason`` is ""
    (the engine reads around that damage; the comment above each such entry says how)."""

    fields: dict[str, bytes]
    reason: str = ""
    fail: bool = False  # the handler raises, so that the retry reads the damaged fields

    @property
    def ran(self) -> bool:
        """Whether the handler runs: it does unless the record cannot even be turned into a call."""
        return not self.reason.startswith(NOT_RUN)


# The error of a chaos.work job asked to fail.
FAILING = "failing on purpose"
# Reasons given by the worker for records it cannot turn into a call (worker/runner.py, BadJob).
NOT_RUN = ("the job's data is not valid JSON", "No task named", "the job record has no task name")
CORRUPTIONS: list[Corruption] = [
    Corruption({"data": b"{not json"}, "the job's data is not valid JSON"),
    # Bytes that are not UTF-8 are read as U+FFFD (storage/connection.py: a damaged record must not
    # make every read fail), so this is valid JSON: the string "\ufffd\ufffd invalid utf-8".
    Corruption({"data": b'"\xff\xfe invalid utf-8"'}),
    Corruption({"data": b"[" * 5000}, "the job's data is not valid JSON"),
    Corruption({"name": b"no.such.task"}, "No task named 'no.such.task'"),
    Corruption({"name": b""}, "the job record has no task name"),
    # A damaged attempt counter restarts at 0 when the attempt starts (lib.lua, start_entry).
    Corruption({"attempt": b"x"}),
    Corruption({"attempt": b"1e400"}),
    # A damaged priority counts as 0 (lib.lua, priority_of).
    Corruption({"priority": b"x"}),
    Corruption({"priority": b"-inf"}),
    # max_attempts is read only when an attempt fails; this one succeeds.
    Corruption({"max_attempts": b"-1"}),
    Corruption({"retry_delay": b"1e308", "max_attempts": b"3"}, f"retry_delay {1e308!r} in its record", fail=True),
    # A NaN delay reads as 0 (job.py, _float) and an unknown backoff as fixed: the job is retried
    # until its attempts are spent, and fails with the handler's own error.
    Corruption({"retry_delay": b"nan", "max_attempts": b"3", "backoff": b"exponential"}, FAILING, fail=True),
    Corruption({"backoff": b"sideways", "max_attempts": b"2"}, FAILING, fail=True),
    # Only shown: the enqueue time.
    Corruption({"enqueued_at": b"not-a-time"}),
    # Written again when the attempt starts (start_entry): start time, id (from the key), entry;
    # the status when the job is promoted from delayed (make_waiting).
    Corruption({"started_at": b"99999999999999999999"}),
    Corruption({"id": b"someone-else"}),
    Corruption({"entry": b"0-1"}),
    Corruption({"status": b"weird"}),
    # A delayed job is due by its score in the delayed set, not by this field.
    Corruption({"run_at": b"-1e30"}),
]
# What the record of a foreign stream entry says (lib.lua, start_entry).
NO_JOB_FIELD = 'is not a tempotask job (no "job" field)'
MISSING_JOB = "names a job that does not exist"


def bad_entry(rng: random.Random, number: int) -> dict[bytes, bytes]:
    """A stream entry that is not a tempotask job: one of several kinds, chosen by ``number``."""
    kind = number % 8
    if kind == 0:  # printable fields, no "job"
        return {_word(rng): _word(rng, 0, 40) for _ in range(rng.randint(1, 5))} | {b"kind": b"fields"}
    if kind == 1:  # binary garbage
        return {rng.randbytes(rng.randint(0, 12)) + b"\x00": rng.randbytes(rng.randint(0, 80))}
    if kind == 2:  # names a job that does not exist
        return {b"job": b"no-such-job-" + rng.randbytes(6).hex().encode()}
    if kind == 3:  # a "job" field holding bytes that are not even text
        return {b"job": b"\xff" + rng.randbytes(rng.randint(1, 30))}
    if kind == 4:  # empty field and value
        return {b"": b""}
    if kind == 5:  # large
        return {b"blob": rng.randbytes(64 * 1024)}
    if kind == 6:  # many fields
        return {f"f{i}".encode(): _word(rng, 0, 8) for i in range(100)}
    return {b"name": b"chaos.work", b"data": b'{"ms": 0}'}  # looks like a job, but is not one


def _word(rng: random.Random, low: int = 1, high: int = 12) -> bytes:
    return bytes(rng.choice(b'abcdefghijklmnopqrstuvwxyz0123456789_-{}[]":,') for _ in range(rng.randint(low, high)))


@scenario(
    "bad_input",
    "{bad:,} foreign or malformed stream entries, {corrupt} corrupted records and {orphans} ids without a record, "
    "mixed with {good:,} good jobs and {crash} jobs that SIGKILL their worker",
    short={"good": 300, "bad": 300, "corrupt": len(CORRUPTIONS), "orphans": 50, "crash": 2},
    long={"good": 1000, "bad": 1000, "corrupt": 3 * len(CORRUPTIONS), "orphans": 200, "crash": 5},
)
def bad_input(lab: Lab, params: dict[str, Any], rng: random.Random) -> Result:
    from tempotask_django.chaos import handlers

    result = Result()
    total = sum(params[key] for key in ("good", "bad", "corrupt", "crash"))
    lab.configure(STALLED_TIMEOUT=2, MAX_DELIVERIES=MAX_DELIVERIES, MAX_JOBS_PER_STATUS=total + 100)
    keys = lab.store.keys(QUEUE)
    raw = lab.raw_client()
    plan = ["good"] * params["good"] + ["bad"] * params["bad"] + ["crash"] * params["crash"]
    plan += ["corrupt"] * params["corrupt"] + ["orphan"] * params["orphans"]
    rng.shuffle(plan)

    workers = lab.workers(2, 4)
    good: list[str] = []
    crash: list[str] = []
    corrupt: dict[str, Corruption] = {}
    bad_entries: dict[str, dict[bytes, bytes]] = {}
    for start in range(0, len(plan), FEED_CHUNK):
        for action in plan[start : start + FEED_CHUNK]:
            if action == "good":
                good.append(handlers.work.enqueue({"ms": rng.randint(0, 5)}))
            elif action == "crash":
                crash.append(handlers.crash.enqueue())
            elif action == "bad":
                entry = bad_entry(rng, len(bad_entries))
                bad_entries[raw.xadd(keys.stream, entry).decode()] = entry  # type: ignore[arg-type,union-attr]
            elif action == "orphan":
                raw.zadd(keys.waiting, {f"orphan-{rng.randbytes(6).hex()}": rng.randint(-(10**6), 10**6)})
            else:
                corruption = CORRUPTIONS[len(corrupt) % len(CORRUPTIONS)]
                job_id = handlers.work.enqueue({"ms": 0, "fail": corruption.fail}, delay=0.5)
                raw.hset(keys.job(job_id), mapping=corruption.fields)  # type: ignore[arg-type]
                corrupt[job_id] = corruption
        time.sleep(0.05)  # let the workers interleave with the feed
    drained = lab.wait_drained(timeout=180)
    result.figure("drained", drained)

    runs = lab.ledger.entries()
    starts = by_job(runs, "start")
    result.must_equal("good jobs done", _count(lab.statuses(good), "completed"), len(good))
    ended = ended_jobs(runs)
    result.must_equal("good jobs whose handler ran to its end (ledger)", sum(1 for j in good if j in ended), len(good))
    _bad_entry_figures(lab, result, bad_entries)
    _corruption_figures(lab, result, corrupt, set(starts))
    result.must_equal("ids without a record that ran", sum(1 for job in starts if job.startswith("orphan-")), 0)
    poisoned = [job_id for job_id in crash if _last_error(lab, job_id)[0] == "PoisonPill"]
    result.must_equal("crash jobs failed as poison pills", _count(lab.statuses(poisoned), "failed"), len(crash))
    result.figure("runs of each crash job (MAX_DELIVERIES)", sorted(len(starts.get(j, [])) for j in crash))
    result.figure("MAX_DELIVERIES", MAX_DELIVERIES)

    crash_pids = {run.pid for job_id in crash for run in starts.get(job_id, [])}
    exits = crashed_children(workers)
    result.figure("worker processes killed by crash jobs", sum(1 for pid in exits if pid in crash_pids))
    result.must_equal("unexpected worker exits", sum(1 for pid in exits if pid not in crash_pids), 0)
    result.figure("good-job duplicates (runs - distinct)", sum(len(starts.get(j, [])) for j in good) - len(good))
    stop_figures(result, workers)
    return result


def _bad_entry_figures(lab: Lab, result: Result, entries: dict[str, dict[bytes, bytes]]) -> None:
    """Each foreign entry must leave a failed record whose error says what was wrong with it."""
    records = {f"invalid-entry-{entry_id}": fields for entry_id, fields in entries.items()}
    statuses = lab.statuses(records)
    result.must_equal("bad entries without a failed record", len(records) - _count(statuses, "failed"), 0)
    keys = lab.store.keys(QUEUE)
    for record in [record for record, status in statuses.items() if status != "failed"][:5]:
        entry_id = record.removeprefix("invalid-entry-")
        pending = lab.client.xpending_range(keys.stream, CONSUMER_GROUP, entry_id, entry_id, 1)
        result.note(f"{record}: status {statuses[record]}, pending {pending or 'no'}")
    explained = 0
    for record, fields in records.items():
        reason = MISSING_JOB if b"job" in fields else NO_JOB_FIELD
        explained += reason in _last_error(lab, record)[1]
    result.must_equal("bad entries whose record says what was wrong", explained, len(records))


def _corruption_figures(lab: Lab, result: Result, corrupt: dict[str, Corruption], started: set[str]) -> None:
    """Each corrupted record must end as its Corruption says: failed with its reason, or completed."""
    statuses = lab.statuses(corrupt)
    wrong = []
    for job_id, corruption in corrupt.items():
        status, message = statuses[job_id], _last_error(lab, job_id)[1]
        expected = "failed" if corruption.reason else "completed"
        if status != expected or corruption.reason not in message or (job_id in started) != corruption.ran:
            wrong.append(f"{corruption.fields}: {status}, ran {job_id in started}, error {message[:120]!r}")
    result.must_equal("corrupted records that ended as expected", len(corrupt) - len(wrong), len(corrupt))
    result.figure("corrupted records failed, saying why", sum(1 for c in corrupt.values() if c.reason))
    result.figure("corrupted records completed (damage read around)", sum(1 for c in corrupt.values() if not c.reason))
    for line in wrong[:10]:
        result.note(f"corrupted record ended otherwise: {line}")


def _count(statuses: dict[str, str | None], status: str) -> int:
    return sum(1 for value in statuses.values() if value == status)


def _last_error(lab: Lab, job_id: str) -> tuple[str, str]:
    """The type and message of the job's last error ("" when it has none)."""
    job = lab.store.inspect.get_job(QUEUE, job_id)
    if not job or not job.errors:
        return "", ""
    return str(job.errors[-1].get("type") or ""), str(job.errors[-1].get("message") or "")
