"""Bad input mixed with good jobs: foreign stream entries, corrupted job records, ids without a record,
and jobs that kill their worker every time. Good jobs all run; bad input ends in failed with a reason;
no worker process dies except those the crash jobs kill.
"""

from __future__ import annotations

import random
import time
from typing import Any

from tempotask_django.chaos.lab import QUEUE, Lab
from tempotask_django.chaos.ledger import by_job
from tempotask_django.chaos.report import Result
from tempotask_django.chaos.scenarios import scenario
from tempotask_django.chaos.workload import crashed_children, stop_figures

MAX_DELIVERIES = 3
# Actions fed to Redis between two checks of progress.
FEED_CHUNK = 50

# Job records corrupted after enqueue (while delayed, so no worker holds them yet): field -> value.
CORRUPTIONS: list[dict[str, bytes]] = [
    {"data": b"{not json"},
    {"data": b'"\xff\xfe invalid utf-8"'},
    {"data": b"[" * 5000},
    {"name": b"no.such.task"},
    {"name": b""},
    {"attempt": b"x"},
    {"attempt": b"1e400"},
    {"priority": b"x"},
    {"priority": b"-inf"},
    {"max_attempts": b"-1"},
    {"retry_delay": b"1e308", "max_attempts": b"3"},
    {"retry_delay": b"nan", "max_attempts": b"3", "backoff": b"exponential"},
    {"backoff": b"sideways", "max_attempts": b"2"},
    {"enqueued_at": b"not-a-time"},
    {"started_at": b"99999999999999999999"},
    {"run_at": b"-1e30"},
    {"status": b"weird"},
    {"id": b"someone-else"},
    {"entry": b"0-1"},
]


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
    from tempotask_django.chaos import tasks

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
    corrupt: list[str] = []
    bad_entries: list[str] = []
    for start in range(0, len(plan), FEED_CHUNK):
        for action in plan[start : start + FEED_CHUNK]:
            if action == "good":
                good.append(tasks.work.enqueue({"ms": rng.randint(0, 5)}))
            elif action == "crash":
                crash.append(tasks.crash.enqueue())
            elif action == "bad":
                bad_entries.append(raw.xadd(keys.stream, bad_entry(rng, len(bad_entries))).decode())  # type: ignore[arg-type,union-attr]
            elif action == "orphan":
                raw.zadd(keys.waiting, {f"orphan-{rng.randbytes(6).hex()}": rng.randint(-(10**6), 10**6)})
            else:
                job_id = tasks.work.enqueue({"ms": 0, "fail": len(corrupt) % 2 == 0}, delay=0.5)
                raw.hset(keys.job(job_id), mapping=CORRUPTIONS[len(corrupt) % len(CORRUPTIONS)])  # type: ignore[arg-type]
                corrupt.append(job_id)
        time.sleep(0.05)  # let the workers interleave with the feed
    drained = lab.wait_drained(timeout=180)
    result.figure("drained", drained)

    runs = lab.ledger.entries()
    starts = by_job(runs, "start")
    good_done = _count(lab.statuses(good), "completed")
    result.must_equal("good jobs done", good_done, len(good))
    records = [f"invalid-entry-{entry}" for entry in bad_entries]
    result.must_equal("bad entries without a failed record", len(records) - _count(lab.statuses(records), "failed"), 0)
    with_reason = sum(1 for record in records if _has_reason(lab, record))
    result.must_equal("bad entries whose record gives a reason", with_reason, len(records))
    corrupt_status = lab.statuses(corrupt)
    settled = _count(corrupt_status, "completed") + _count(corrupt_status, "failed")
    result.must_equal("corrupted records left unfinished", len(corrupt) - settled, 0)
    result.figure("corrupted records failed", _count(corrupt_status, "failed"))
    result.must_equal("ids without a record that ran", sum(1 for job in starts if job.startswith("orphan-")), 0)
    poisoned = [job_id for job_id in crash if _last_error(lab, job_id) == "PoisonPill"]
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


def _count(statuses: dict[str, str | None], status: str) -> int:
    return sum(1 for value in statuses.values() if value == status)


def _has_reason(lab: Lab, job_id: str) -> bool:
    job = lab.store.get_job(QUEUE, job_id)
    return bool(job and job.errors and job.errors[-1].get("message"))


def _last_error(lab: Lab, job_id: str) -> str:
    job = lab.store.get_job(QUEUE, job_id)
    return str(job.errors[-1].get("type")) if job and job.errors else ""
