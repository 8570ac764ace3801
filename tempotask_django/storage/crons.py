"""Cron schedules in Redis: registration, firing ticks, pause/resume, and the records the admin reads.

Each schedule keeps one hash under its queue's hash tag, ``P:{Q}:cron:<name>``, so firing a tick and
enqueueing its job is one script (cron_fire.lua). The global hash ``P:crons`` maps each name to its
queue, for listing. Fields of the schedule hash:

    name, task, expression, timezone, description, queue, data (JSON), attempts, priority, source
                     the definition, as the beat that registered it last had it
    since            ms; ticks at or before it never fire (set when created, changed or resumed)
    last_tick        ms; the last tick decided (fired, missed or skipped while paused)
    last_run         ms; the last tick that enqueued a job
    last_missed      ms; the last tick skipped for being older than the catch-up window
    next_run         ms; the next tick, as the beats computed it
    last_job_id, last_enqueued_at (ms), runs (jobs enqueued), paused (ms, present while paused),
    updated_at (ms)

Live beats announce themselves like workers (storage/presence.py): ``P:beats`` and ``P:beat:<id>``.
"""

from __future__ import annotations

import builtins
import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tempotask_django import serialization
from tempotask_django.job import JobStatus, ms_to_datetime
from tempotask_django.storage import presence
from tempotask_django.storage.records import JobSpec
from tempotask_django.storage.store import RedisStore


@dataclass(frozen=True)
class CronInfo:
    """A cron schedule as Redis knows it: what ``list_crons()`` returns and the admin shows."""

    name: str
    task: str
    expression: str
    description: str  # the expression in words ("Every 5 minutes"), or the expression itself
    timezone: str
    queue: str
    data: Any
    attempts: int | None
    priority: int | None
    next_run: datetime.datetime | None
    last_run: datetime.datetime | None  # the scheduled time of the last tick that enqueued a job
    last_enqueued_at: datetime.datetime | None  # when the last job (tick or run now) was enqueued
    last_job_id: str | None
    last_job_status: JobStatus | None  # None when no job ran yet or it left the history
    paused: bool
    runs: int

    @classmethod
    def from_fields(cls, fields: dict[str, str], job_status: str | None) -> CronInfo:
        return cls(
            name=fields.get("name", ""),
            task=fields.get("task", ""),
            expression=fields.get("expression", ""),
            description=fields.get("description") or fields.get("expression", ""),
            timezone=fields.get("timezone", ""),
            queue=fields.get("queue", ""),
            data=serialization.decode(fields.get("data"), default=None),
            attempts=_int_or_none(fields.get("attempts")),
            priority=_int_or_none(fields.get("priority")),
            next_run=ms_to_datetime(fields.get("next_run")),
            last_run=ms_to_datetime(fields.get("last_run")),
            last_enqueued_at=ms_to_datetime(fields.get("last_enqueued_at")),
            last_job_id=fields.get("last_job_id") or None,
            last_job_status=JobStatus.parse(job_status),
            paused=bool(fields.get("paused")),
            runs=_int_or_none(fields.get("runs")) or 0,
        )


@dataclass(frozen=True)
class BeatInfo:
    """A live cron beat, as its last heartbeat described it: what ``list_beats()`` returns."""

    id: str
    host: str
    pid: int | None
    kind: str  # "runcron" or "runworkers --with-cron"
    schedules: int  # schedules this beat fires
    started: datetime.datetime | None
    last_tick: datetime.datetime | None  # when it last looked for due ticks (server clock)
    heartbeat: datetime.datetime | None  # its last heartbeat (server clock)

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> BeatInfo:
        return cls(
            id=fields.get("id", ""),
            host=fields.get("host", ""),
            pid=_int_or_none(fields.get("pid")),
            kind=fields.get("kind", ""),
            schedules=_int_or_none(fields.get("schedules")) or 0,
            started=ms_to_datetime(fields.get("started")),
            last_tick=ms_to_datetime(fields.get("last_tick")),
            heartbeat=ms_to_datetime(fields.get("heartbeat")),
        )


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


@dataclass(frozen=True)
class Fire:
    """One request to the fire script: a beat's tick (``tick_ms``) or a run now (``tick_ms`` = 0)."""

    name: str
    spec: JobSpec
    tick_ms: int = 0
    next_run_ms: int = 0

    @property
    def mode(self) -> str:
        return "tick" if self.tick_ms else "now"


@dataclass(frozen=True)
class FireOutcome:
    outcome: str  # fired, ran, not-due, done, paused, missed, unknown
    job_status: str
    now_ms: int


def _outcome(reply: Sequence[Any]) -> FireOutcome:
    outcome, status, now, _new_queue = reply
    return FireOutcome(outcome, status or "", int(now))


class CronStore:
    """The cron side of a RedisStore: runs its scripts through ``store.scripts``."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self.client = store.client
        self.index = store.global_keys.crons

    def registered(self) -> dict[str, str]:
        """Schedule name -> queue of every schedule in Redis."""
        return {str(name): str(queue) for name, queue in self.client.hgetall(self.index).items()}

    def register(
        self,
        name: str,
        queue: str,
        definition: dict[str, str],
        next_run_ms: int,
        carried_tick_ms: int = 0,
        now_ms: int = 0,
    ) -> bool:
        """Create or update a schedule's definition (its state survives). True when new or changed."""
        args: list[Any] = [name, now_ms, next_run_ms, carried_tick_ms]
        for field, value in definition.items():
            args += [field, value]
        fresh = self.store.scripts.run("cron_register", queue, args)
        self.client.hset(self.index, name, queue)
        return bool(fresh)

    def last_tick_ms(self, name: str, queue: str) -> int:
        return int(self.client.hget(self.store.keys(queue).cron(name), "last_tick") or 0)

    def unregister(self, name: str, queue: str) -> None:
        """Forget a schedule: its state and its index entry."""
        pipe = self.client.pipeline(transaction=False)
        pipe.delete(self.store.keys(queue).cron(name))
        pipe.hdel(self.index, name)
        pipe.execute()

    def delete_state(self, name: str, queue: str) -> None:
        """Delete a schedule's hash in ``queue`` (after it moved to another queue)."""
        self.client.delete(self.store.keys(queue).cron(name))

    def fire(self, fires: Sequence[Fire], *, catchup_ms: int, now_ms: int = 0) -> list[FireOutcome | Exception]:
        """Fire ticks (or runs now) in one round trip; each is decided atomically by cron_fire.lua.

        A call Redis refused (READONLY, OOM) has its error in its place: nothing of it was written
        (the script's first write is the refused one). A connection error raises: whether the
        server ran the calls is unknown, and offering them again is safe (a decided tick answers
        "done")."""
        if not fires:
            return []
        for queue in {fire.spec.queue for fire in fires}:
            self.store.register_queue(queue)
        calls = []
        for fire in fires:
            spec = fire.spec
            args = [
                fire.name,
                fire.mode,
                fire.tick_ms,
                fire.next_run_ms,
                now_ms,
                catchup_ms,
                spec.id,
                spec.priority,
                *spec.job_args(),
            ]
            keys = self.store.keys(spec.queue)
            calls.append(
                ("cron_fire", spec.queue, args, [keys.cron(fire.name), *self.store.job_keys(spec.queue, spec.id)])
            )
        replies = self.store.scripts.pipeline(calls, raise_errors=False)
        answered = [
            (fire, reply) for fire, reply in zip(fires, replies, strict=True) if not isinstance(reply, Exception)
        ]
        self.store.registered_again({fire.spec.queue for fire, reply in answered if reply[3]})
        return [reply if isinstance(reply, Exception) else _outcome(reply) for reply in replies]

    def queue_of(self, name: str) -> str | None:
        queue = self.client.hget(self.index, name)
        return None if queue is None else str(queue)

    def control(self, name: str, action: str, now_ms: int = 0) -> bool:
        """Pause or resume; False when no such schedule is registered."""
        queue = self.queue_of(name)
        if queue is None:
            return False
        return bool(self.store.scripts.run("cron_control", queue, [name, action, now_ms]))

    def get(self, name: str) -> dict[str, str] | None:
        """The schedule's hash, or None when it is not registered."""
        queue = self.queue_of(name)
        if queue is None:
            return None
        fields = self.client.hgetall(self.store.keys(queue).cron(name))
        return {str(key): str(value) for key, value in fields.items()} or None

    def list(self, *, with_job_status: bool = True) -> list[CronInfo]:
        """Every registered schedule, sorted by name, with its last job's status unless
        ``with_job_status`` is False (three round trips, or two, however many schedules)."""
        index = sorted(self.registered().items())
        if not index:
            return []
        pipe = self.client.pipeline(transaction=False)
        for name, queue in index:
            pipe.hgetall(self.store.keys(queue).cron(name))
        states = [(queue, fields) for (_, queue), fields in zip(index, pipe.execute(), strict=True) if fields]
        statuses: list[str | None] = [None] * len(states)
        if with_job_status and states:
            pipe = self.client.pipeline(transaction=False)
            for queue, fields in states:
                pipe.hget(self.store.keys(queue).job(fields.get("last_job_id") or "-"), "status")
            statuses = pipe.execute()
        return [CronInfo.from_fields(fields, status) for (_, fields), status in zip(states, statuses, strict=True)]

    # -- live beats -----------------------------------------------------------------------------
    def publish_beat(self, beat_id: str, info: dict[str, Any], ttl: float, now_ms: int) -> None:
        """A beat's heartbeat (one round trip): its info stays visible for ``ttl`` seconds."""
        keys = self.store.global_keys
        presence.publish(self.client, keys.beats, keys.beat(beat_id), beat_id, info, ttl, now_ms)

    def withdraw_beat(self, beat_id: str) -> None:
        keys = self.store.global_keys
        presence.withdraw(self.client, keys.beats, keys.beat(beat_id), beat_id)

    def beats(self) -> builtins.list[BeatInfo]:  # builtins: ``list`` here is the method above
        """Live beats (their heartbeat has not expired), most recent heartbeat first."""
        keys = self.store.global_keys
        return [BeatInfo.from_fields(fields) for fields in presence.live(self.client, keys.beats, keys.beat)]
