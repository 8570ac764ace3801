"""Cron schedules in Redis: registration, firing ticks, pause/resume, and the records the admin reads.

Each schedule keeps one hash under its queue's hash tag, ``P:{Q}:cron:<name>``, so firing a tick and
enqueueing its job is one script (cron_fire.lua). The global hash ``P:crons`` maps each name to its
queue, for listing. Fields of the schedule hash:

    name, task, expression, timezone, description, queue, data (JSON), attempts, priority, overlap,
    source           the definition: as the beat that registered it last had it ("task",
                     "settings"), or as the admin or the API last saved it ("runtime")
    since            ms; ticks at or before it never fire (set when created, changed or resumed)
    gen, changed_at, prev_since
                     runtime schedules: the version (bumped by every change), when it began (ms),
                     and the previous version's since (see cron_fire.lua)
    deleted          ms; present on the tombstone of a deleted runtime schedule (it expires)
    last_tick        ms; the last tick decided (fired, missed, or skipped: paused, overlap)
    held_tick        ms; a tick waiting for the previous run to end (overlap "queue")
    skipped, last_skipped
                     ticks skipped by overlap, and the last one (ms)
    last_run         ms; the last tick that enqueued a job
    last_missed      ms; the last tick skipped for being older than the catch-up window
    next_run         ms; the next tick, as the beats computed it
    last_job_id, last_enqueued_at (ms), runs (jobs enqueued), paused (ms, present while paused),
    updated_at (ms)

The schedule's history, ``P:{Q}:cron_history:<name>``, lists its changes and the ticks overlap
skipped or held (JSON, newest 200). Runtime schedules are also named in ``P:runtime_crons``, and
every change of one bumps ``P:crons_version``: beats reload them when it moves.

Live beats announce themselves like workers (storage/presence.py): ``P:beats`` and ``P:beat:<id>``.
"""

from __future__ import annotations

import builtins
import datetime
import json
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
    source: str = "task"  # "task" (@task(cron=...)), "settings" (TEMPOTASK["CRONS"]) or "runtime"
    overlap: str = "allow"  # "allow", "skip" or "queue"
    skipped: int = 0  # ticks skipped by overlap
    held_tick: datetime.datetime | None = None  # a tick waiting for the previous run (overlap "queue")
    version: int = 0  # runtime schedules: bumped by every change

    @property
    def is_runtime(self) -> bool:
        return self.source == "runtime"

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
            source=fields.get("source") or "task",
            overlap=fields.get("overlap") or "allow",
            skipped=_int_or_none(fields.get("skipped")) or 0,
            held_tick=ms_to_datetime(fields.get("held_tick")),
            version=_int_or_none(fields.get("gen")) or 0,
        )


@dataclass(frozen=True)
class CronEvent:
    """One entry of a schedule's history: a change, or a tick overlap skipped or held."""

    at: datetime.datetime | None  # when (server clock)
    event: str  # created, changed, deleted, moved, paused, resumed, skipped, held, released, dropped, missed
    tick: datetime.datetime | None  # the tick concerned, if any
    change: Any = None  # created/changed: what the change was (before/after), as saved

    @property
    def change_text(self) -> str:
        """The change as JSON, for display."""
        return "" if self.change is None else json.dumps(self.change, default=str)


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
    """One request to the fire script: a beat's tick (``tick_ms``), the release of a tick held by
    overlap "queue" (``release``), or a run now (``tick_ms`` = 0).

    ``version`` is the runtime schedule's version the tick was computed from (-1: a code schedule);
    ``previous_job_id`` the schedule's last job as the beat knows it (for overlap)."""

    name: str
    spec: JobSpec
    tick_ms: int = 0
    next_run_ms: int = 0
    version: int = -1
    previous_job_id: str = ""
    release: bool = False

    @property
    def mode(self) -> str:
        if not self.tick_ms:
            return "now"
        return "release" if self.release else "tick"


@dataclass(frozen=True)
class FireOutcome:
    outcome: str  # fired, ran, released, not-due, done, paused, missed, skipped, held, recheck, stale, unknown
    job_status: str
    now_ms: int
    last_job_id: str = ""  # the schedule's last job after this call
    held_tick_ms: int = 0  # its tick waiting for the previous run (overlap "queue"), 0: none


def _outcome(reply: Sequence[Any]) -> FireOutcome:
    outcome, status, now, _new_queue, last_job_id, held = reply
    return FireOutcome(outcome, status or "", int(now), str(last_job_id or ""), int(held or 0))


@dataclass(frozen=True)
class DefineReply:
    """What cron_define.lua / cron_delete.lua answered: ``result`` "ok" or why nothing was written."""

    result: str
    version: int
    now_ms: int
    last_tick_ms: int = 0


# How long the tombstone of a deleted runtime schedule stays, s: far longer than any beat can go
# without reloading (one heartbeat), short enough that deleted names do not pile up.
TOMBSTONE_SECONDS = 7 * 86400


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
        fresh = self.store.scripts.run("cron_register", queue, args, [self.store.keys(queue).cron(name)])
        if fresh == -1:
            return False
        self.client.hset(self.index, name, queue)
        return bool(fresh)

    # -- runtime schedules ----------------------------------------------------------------------
    def define(
        self,
        name: str,
        queue: str,
        definition: dict[str, str],
        mode: str,
        change: str,
        *,
        carried_tick_ms: int = 0,
        carried_version: int = 0,
        now_ms: int = 0,
    ) -> DefineReply:
        """Create (``mode`` "add") or change ("update", "move") a runtime schedule in ``queue``: a new
        version starting now. ``change`` (JSON) goes to its history. Then names it in the index and
        bumps the version counter the beats watch."""
        keys = self.store.keys(queue)
        args: list[Any] = [name, mode, now_ms, carried_tick_ms, carried_version, change]
        for field, value in definition.items():
            args += [field, value]
        result, version, now = self.store.scripts.run(
            "cron_define", queue, args, [keys.cron(name), keys.cron_history(name)]
        )
        if result == "ok":
            self._announce(name, queue)
        return DefineReply(str(result), int(version or 0), int(now))

    def tombstone(self, name: str, queue: str, *, moving: bool = False, now_ms: int = 0) -> DefineReply:
        """Delete a runtime schedule (its hash stays a while as a tombstone that never fires)."""
        keys = self.store.keys(queue)
        args = [name, now_ms, "move" if moving else "delete", TOMBSTONE_SECONDS]
        result, last_tick, version, now = self.store.scripts.run(
            "cron_delete", queue, args, [keys.cron(name), keys.cron_history(name)]
        )
        if result == "ok" and not moving:
            self._announce(name, None)
        return DefineReply(str(result), int(version), int(now), int(last_tick))

    def _announce(self, name: str, queue: str | None) -> None:
        """Index ``name`` in ``queue`` (None: forget it) and tell the beats something changed."""
        keys = self.store.global_keys
        pipe = self.client.pipeline(transaction=False)
        if queue is None:
            pipe.hdel(self.index, name)
            pipe.srem(keys.runtime_crons, name)
        else:
            pipe.hset(self.index, name, queue)
            pipe.sadd(keys.runtime_crons, name)
        pipe.incr(keys.crons_version)
        pipe.execute()

    def runtime_version(self) -> int:
        """The counter every runtime schedule change bumps (beats reload when it moves)."""
        return int(self.client.get(self.store.global_keys.crons_version) or 0)

    def runtime_names(self) -> set[str]:
        return {str(name) for name in self.client.smembers(self.store.global_keys.runtime_crons)}

    def runtime_definitions(self) -> dict[str, dict[str, str]]:
        """Name -> hash of every live runtime schedule (two round trips however many there are)."""
        index = {name: queue for name, queue in self.registered().items() if name in self.runtime_names()}
        pipe = self.client.pipeline(transaction=False)
        for name, queue in index.items():
            pipe.hgetall(self.store.keys(queue).cron(name))
        found: dict[str, dict[str, str]] = {}
        for name, fields in zip(index, pipe.execute(), strict=True):
            fields = {str(key): str(value) for key, value in fields.items()}
            if fields.get("source") == "runtime" and "deleted" not in fields:
                found[name] = fields
        return found

    def history(self, name: str, limit: int = 50) -> builtins.list[CronEvent]:
        """The schedule's newest ``limit`` events, newest first."""
        queue = self.queue_of(name)
        if queue is None:
            return []
        raw = self.client.lrange(self.store.keys(queue).cron_history(name), -limit, -1)
        events = []
        for item in reversed(raw):
            entry = serialization.decode(item, default={})
            if not isinstance(entry, dict):
                continue
            change = entry.get("change")
            events.append(
                CronEvent(
                    ms_to_datetime(entry.get("t")),
                    str(entry.get("event", "")),
                    ms_to_datetime(entry.get("tick")),
                    serialization.decode(change, default=change) if isinstance(change, str) else change,
                )
            )
        return events

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
                fire.version,
                *spec.job_args(),
            ]
            keys = self.store.keys(spec.queue)
            own = [
                keys.cron(fire.name),
                *self.store.job_keys(spec.queue, spec.id),
                keys.job(fire.previous_job_id or "-"),
                keys.cron_history(fire.name),
            ]
            calls.append(("cron_fire", spec.queue, args, own))
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
        keys = self.store.keys(queue)
        own = [keys.cron(name), keys.cron_history(name)]
        return bool(self.store.scripts.run("cron_control", queue, [name, action, now_ms], own))

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
