"""What the failover scenarios share: a producer enqueueing all the time over several queues, the
phases it runs in (one per ``ENQUEUE_REPLICAS`` value, each with failovers mid-run), and the figures.

A phase: the producer enqueues its budget of ``chaos.work`` jobs at a steady rate, round robin over
the queues, one ``enqueue_many`` per queue per round, with job ids naming the phase and the queue.
While it runs, the scenario's events (a ``CLUSTER FAILOVER``, a SIGKILL of a master, ...) happen at
set fractions of the budget; the producer holds back its last share until they are over and the
servers are whole again, so every event happens under load. A batch is acknowledged when its
``enqueue_many`` returned: those jobs must run (with ``ENQUEUE_REPLICAS`` 1 that is checked; with 0,
jobs a crashed master acknowledged before its replica had them may be lost, which is reported).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from tempotask_django import partitions
from tempotask_django.chaos.beat_records import (
    last_ticks,
    ledger_ticks,
    redis_fire_figures,
    registration_times,
    tick_jobs,
)
from tempotask_django.chaos.lab import Command, Lab
from tempotask_django.chaos.ledger import Run, percentile
from tempotask_django.chaos.report import Result
from tempotask_django.chaos.ticks import TickWindow, count_tick_jobs, parse_tick_job
from tempotask_django.chaos.workload import crashed_children, stop_figures, wait_children

# The cron schedule both beats fire, every second, on the lab's queue (the handler records each tick).
TICK_SCHEDULE = "every-second"
CRONS = {TICK_SCHEDULE: {"task": "chaos.tick", "cron": "* * * * * *"}}
# Seconds allowed for the processes to start, for the servers to heal, for the jobs to run at the end.
START_TIMEOUT = 90
HEAL_TIMEOUT = 60
DRAIN_TIMEOUT = 120
# Seconds without one more job run after which the jobs still missing are taken as lost (stalled
# jobs are taken over after STALLED_TIMEOUT, a few seconds).
STALL_TIMEOUT = 15
# Share of a phase's budget the producer holds back until the phase's events are over.
HELD_BACK = 0.15


@dataclass
class Event:
    """One failover: what was done, to the master of which queues, and when (epoch seconds).

    ``queues`` are physical queues: for a partitioned queue, the partitions on the master it hit
    (``q2~1of3``), whose counts ``partitions`` gives (queue -> PARTITIONS), so a job of that queue
    counts for the event only when its partition was hit (its other partitions never stopped)."""

    name: str
    queues: list[str]
    started: float
    switched: float  # when the new master served (promoted, named by the sentinels)
    healed: float = 0.0  # when every master had a synced replica again
    port: int = 0  # the server it hit (the master failed over or killed)
    partitions: dict[str, int] = field(default_factory=dict)

    def label(self, replicas: int) -> str:
        return f"ENQUEUE_REPLICAS {replicas}, {self.name}"


@dataclass
class Batch:
    started: float
    queue: str
    ids: list[str]
    acknowledged: bool
    error: str = ""


@dataclass
class Producer:
    """Enqueues ``budget`` jobs at ``rate`` per second over ``queues``, ``per_call`` jobs per call."""

    phase: str
    queues: Sequence[str]
    budget: int
    rate: float
    rng: random.Random
    per_call: int = 10
    max_ms: int = 5
    batches: list[Batch] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)
    stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self.run, name=f"producer-{self.phase}", daemon=True)
        self.hold_at = int(self.budget * (1 - HELD_BACK))

    @property
    def sent(self) -> int:
        return sum(len(batch.ids) for batch in self.batches)

    def run(self) -> None:
        from tempotask_django import producer
        from tempotask_django.chaos import handlers

        n, begun = 0, time.monotonic()
        while n < self.budget and not self.stopping.is_set():
            if n >= self.hold_at:
                self.released.wait()
            for queue in self.queues:
                count = min(self.per_call, self.budget - n)
                if count <= 0:
                    break
                ids = [f"{self.phase}-{queue}-{n + i}" for i in range(count)]
                items = [
                    (handlers.work, {"ms": self.rng.randint(0, self.max_ms)}, {"queue": queue, "job_id": job_id})
                    for job_id in ids
                ]
                started = time.time()
                try:
                    producer.enqueue_many(items)
                except Exception as exc:  # unacknowledged: may or may not be queued
                    self.batches.append(Batch(started, queue, ids, False, type(exc).__name__))
                else:
                    self.batches.append(Batch(started, queue, ids, True))
                n += count
            # A steady rate: a round that took longer (an outage) is not made up for in a burst.
            begun = max(begun, time.monotonic() - 1.0)
            begun += len(self.queues) * self.per_call / self.rate
            time.sleep(max(0.0, begun - time.monotonic()))

    def acknowledged(self) -> list[str]:
        return [job_id for batch in self.batches if batch.acknowledged for job_id in batch.ids]

    def refused(self) -> Counter[str]:
        return Counter(batch.error for batch in self.batches if not batch.acknowledged for _ in batch.ids)

    def wait_sent(self, count: int, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while self.sent < count and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)


def queue_of(job_id: str) -> str | None:
    """The queue a job of the producer was sent to (ids are ``<phase>-<queue>-<n>``; queue names
    hold no ``-`` here), the logical one for a partitioned queue; the lab's queue for a tick job;
    None for any other id."""
    if job_id.startswith("cron:"):
        return "chaos"
    parts = job_id.split("-")
    return parts[1] if len(parts) == 3 else None


def physical_queue_of(job_id: str, counts: dict[str, int]) -> str | None:
    """The physical queue holding a job of the producer: for a queue of ``counts`` (queue ->
    PARTITIONS), the partition its id maps to, as the store picks it (partitions.for_id)."""
    queue = queue_of(job_id)
    count = counts.get(queue, 1) if queue else 1
    if queue is None or count <= 1:
        return queue
    return partitions.name(queue, partitions.index_for(job_id, count), count)


@dataclass
class Phase:
    replicas: int
    producer: Producer
    events: list[Event]


def run_phase(
    lab: Lab,
    replicas: int,
    queues: Sequence[str],
    params: dict[str, Any],
    rng: random.Random,
    events: Sequence[Callable[[], Event]],
    heal: Callable[[Event], None],
) -> Phase:
    """Enqueue a phase's budget with ``ENQUEUE_REPLICAS`` ``replicas``; run each of ``events`` once
    its share of the budget is sent (evenly spread before the held-back share), healing after each."""
    lab.configure(ENQUEUE_REPLICAS=replicas)
    budget = params["jobs"] // 2
    producer = Producer(f"r{replicas}", queues, budget, params["rate"], rng, max_ms=params["max_ms"])
    producer.thread.start()
    done: list[Event] = []
    try:
        for number, event in enumerate(events, start=1):
            producer.wait_sent(int(producer.hold_at * number / (len(events) + 1)))
            happened = event()
            heal(happened)
            happened.healed = time.time()
            done.append(happened)
    finally:
        producer.released.set()
    producer.thread.join(timeout=300)
    producer.stopping.set()
    return Phase(replicas, producer, done)


def start_processes(lab: Lab, queues: Sequence[str], params: dict[str, Any]) -> tuple[Command, list[Command]]:
    """``runworkers`` (``processes`` x ``concurrency``) on every queue and ``beats`` ``runcron``."""
    workers = lab.start(
        "runworkers",
        "--queues",
        *queues,
        "--processes",
        str(params["processes"]),
        "--concurrency",
        str(params["concurrency"]),
        log_level="INFO",
    )
    beats = [lab.start("runcron", "--verbosity", "2", log_level="INFO") for _ in range(params["beats"])]
    wait_children(workers, params["processes"], timeout=START_TIMEOUT)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and not registration_times(lab, [TICK_SCHEDULE]):
        time.sleep(0.1)
    return workers, beats


def wait_ran(lab: Lab, job_ids: Sequence[str], timeout: float = DRAIN_TIMEOUT) -> None:
    """Wait until every job of ``job_ids`` ended in the ledger, or none more did for STALL_TIMEOUT s
    (the others are lost: a failover lost their enqueue), or ``timeout``."""
    wanted = set(job_ids)
    deadline = time.monotonic() + timeout
    missing, progressed = len(wanted), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - progressed < STALL_TIMEOUT:
        ended = {run.job for run in lab.ledger.entries() if run.event == "end"}
        left = len(wanted - ended)
        if not left:
            return
        if left < missing:
            missing, progressed = left, time.monotonic()
        time.sleep(1.0)


def server_ms(lab: Lab) -> int:
    """The server clock of the master of the lab's queue, ms."""
    seconds, micros = lab.store.client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def wait_ticks_decided(lab: Lab, window: TickWindow, timeout: float = DRAIN_TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if last_ticks(lab, [TICK_SCHEDULE])[TICK_SCHEDULE] >= window.last_due_ms(TICK_SCHEDULE):
                return True
        except redis.RedisError:
            pass
        time.sleep(0.2)
    return False


def finish(lab: Lab, result: Result, phases: list[Phase], workers: Command, beats: list[Command]) -> None:
    """Wait for the jobs and the ticks, stop the processes, and record every figure."""
    acknowledged = [job_id for phase in phases for job_id in phase.producer.acknowledged()]
    wait_ran(lab, acknowledged)
    until_ms = server_ms(lab)
    window = TickWindow(1, registration_times(lab, [TICK_SCHEDULE]), until_ms)
    if not wait_ticks_decided(lab, window):
        result.note("the window's last tick was not decided in time")
    wait_ran(lab, [f"cron:{TICK_SCHEDULE}:{tick}" for _, tick in window.expected()], timeout=30)
    pids = workers.children()
    runs = lab.ledger.entries()
    ended = {run.job for run in runs if run.event == "end"}

    result.figure("queues", phases[0].producer.queues)
    for phase in phases:
        producer = phase.producer
        acked = producer.acknowledged()
        lost = sum(1 for job_id in acked if job_id not in ended)
        prefix = f"ENQUEUE_REPLICAS {phase.replicas}:"
        result.figure(f"{prefix} jobs sent", producer.sent)
        result.figure(f"{prefix} jobs acknowledged", len(acked))
        result.figure(f"{prefix} enqueues raised (jobs, by error)", dict(producer.refused()))
        if phase.replicas:
            result.must_equal(f"{prefix} acknowledged jobs lost", lost, 0)
        else:
            result.figure(f"{prefix} acknowledged jobs lost (reported)", lost)
        unacked_ran = sum(1 for b in producer.batches if not b.acknowledged for j in b.ids if j in ended)
        result.figure(f"{prefix} unacknowledged jobs that ran", unacked_ran)
        for event in phase.events:
            _event_figures(result, event, phase.replicas, runs, pids)
    all_back = [
        _all_back(runs, pids, event) for phase in phases for event in phase.events if event.name.startswith("SIGKILL")
    ]
    known = [seconds for seconds in all_back if seconds is not None]
    worst = max(known) if known and len(known) == len(all_back) else None
    result.figure("every worker ran again after a SIGKILL, worst, s", worst)
    starts = Counter(run.job for run in runs if run.event == "start" and queue_of(run.job))
    result.figure("handler runs beyond one per job (at least once)", sum(count - 1 for count in starts.values()))
    result.must_equal("worker process exits", len(crashed_children(workers)), 0)
    result.must_equal("worker supervisor still running", workers.alive(), True)
    _tick_figures(lab, result, window, runs, beats)
    for number, beat in enumerate(beats, start=1):
        code, _ = beat.stop(timeout=30)
        result.must_equal(f"beat {number} exit code after SIGTERM", code, 0)
    stop_figures(result, workers)


def _event_figures(result: Result, event: Event, replicas: int, runs: list[Run], pids: list[int]) -> None:
    label = event.label(replicas)
    result.figure(f"{label}: queues hit", event.queues)
    result.figure(f"{label}: new master serving after, s", event.switched - event.started)
    result.figure(f"{label}: whole again (synced replica) after, s", event.healed - event.started)
    first = min((run.t for run in runs if _of_event(run, event)), default=None)
    result.figure(f"{label}: its queues ran a job again after, s", None if first is None else first - event.started)
    result.figure(f"{label}: every worker ran one of them again after, s", _all_back(runs, pids, event))


def _of_event(run: Run, event: Event) -> bool:
    return (
        run.event == "start" and run.t >= event.started and physical_queue_of(run.job, event.partitions) in event.queues
    )


def _all_back(runs: list[Run], pids: list[int], event: Event) -> float | None:
    """Seconds from the event until every worker process had started a job of the queues it hit."""
    firsts = {}
    for run in runs:
        if _of_event(run, event) and run.pid not in firsts:
            firsts[run.pid] = run.t
    if not pids or not set(pids) <= set(firsts):
        return None
    return max(firsts[pid] for pid in pids) - event.started


def _tick_figures(lab: Lab, result: Result, window: TickWindow, runs: list[Run], beats: list[Command]) -> None:
    """Every-second ticks between the schedule's registration and the end: none lost (neither a job
    in Redis nor a handler run in the ledger) and none fired twice (one job per tick in Redis, and
    the schedule's fire counter equal to the tick jobs: a second fire of a finished tick replaces its
    job but counts). The fires each beat logged are reported beside them."""
    expected = window.expected()
    jobs = tick_jobs(lab, [TICK_SCHEDULE])
    seen = jobs.seen
    ledger = ledger_ticks(runs)
    fired = count_tick_jobs(
        line.message.split()[-6]
        for beat in beats
        for line in beat.log_lines()
        if line.message.startswith(f"cron {TICK_SCHEDULE}: enqueued job ")
    )
    result.figure("cron ticks expected", len(expected))
    lost = sorted(tick for tick in expected if seen[tick] == 0 and ledger[tick] == 0)
    doubled = sum(count - 1 for count in seen.values() if count > 1)
    result.must_equal("cron ticks lost", len(lost), 0)
    if lost:
        result.note(f"ticks lost (epoch seconds): {[second for _, second in lost]}")
    result.must_equal("cron ticks doubled (Redis jobs)", doubled, 0)
    redis_fire_figures(result, jobs)
    # Two beats may each log a fire of one tick when one of them still wrote to a master the
    # sentinels had just replaced (see docs/redis-modes.md, "Writes the old master accepts after a
    # failover"): that master's copy is discarded when it turns replica, so Redis keeps one job.
    result.figure("cron ticks logged as fired by two beats", sum(count - 1 for count in fired.values() if count > 1))
    # A beat that sees a new master offers it again the ticks it answered just before (cron/beat.py).
    result.figure(
        "cron re-offers to a new master (beats' logs)",
        sum(1 for beat in beats for line in beat.log_lines() if "a new master: its ticks from" in line.message),
    )
    # A tick's job, fired once, may run twice (at least once): a failover can lose the write that
    # finished it, and the job runs again. That is the jobs' guarantee, not a second fire.
    result.figure("cron tick jobs run twice (at least once)", sum(count - 1 for count in ledger.values() if count > 1))
    lags = [
        float(at - tick[1] * 1000)
        for job_id, at in jobs.enqueued_at.items()
        if (tick := parse_tick_job(job_id)) is not None and tick in expected
    ]
    result.figure("cron fire lag p50, ms", percentile(lags, 50))
    result.figure("cron fire lag max, ms", max(lags) if lags else None)
