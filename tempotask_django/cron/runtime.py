"""Runtime schedules: cron schedules created, changed and deleted while everything runs (the admin,
``add_cron``...), stored in Redis next to the code's, and picked up by every beat within a heartbeat.

Each change is a new version that starts at the moment Redis saves it: the ticks up to that moment
belong to the version before, those after it to the new one. The fire script knows the version a
beat computed a tick from and refuses a tick of an old version after the change (cron_fire.lua),
so an edit never doubles a tick, a deleted schedule never fires again, and a beat that has not seen
the change yet cannot fire the old expression's tick.
"""

from __future__ import annotations

import json
from typing import Any

from tempotask_django import partitions, serialization
from tempotask_django.conf import get_settings, raw_settings
from tempotask_django.cron.expression import CronExpression
from tempotask_django.cron.schedules import (
    SCHEDULE_NAME,
    CronSchedule,
    collect_schedules,
    default_timezone,
    overlap_choice,
)
from tempotask_django.exceptions import ConfigurationError, CronNotFound, InvalidSchedule
from tempotask_django.registry import TaskRegistry, registry
from tempotask_django.storage.connection import get_default_store
from tempotask_django.storage.crons import CronStore
from tempotask_django.storage.store import RedisStore
from tempotask_django.validation import attempts as check_attempts
from tempotask_django.validation import priority as check_priority
from tempotask_django.validation import queue_name

# The fields of a runtime schedule a change may set (add_cron's keyword arguments, update_cron's).
EDITABLE = ("task", "cron", "timezone", "data", "queue", "attempts", "priority", "overlap")


def build(
    name: str,
    task: str,
    cron: str,
    *,
    timezone: str | None = None,
    data: Any = None,
    queue: str | None = None,
    attempts: int | None = None,
    priority: int | None = None,
    overlap: str = "allow",
    tasks: TaskRegistry = registry,
) -> CronSchedule:
    """A runtime schedule from its fields, checked like the code's; InvalidSchedule naming the
    first mistake. No Redis."""
    where = f"cron schedule {name!r}"
    if not isinstance(name, str) or not SCHEDULE_NAME.match(name):
        raise InvalidSchedule(f"{where}: a schedule name is 1-150 letters, digits or '_.@+=-'.")
    if not isinstance(task, str) or task not in tasks:
        known = ", ".join(sorted(t.name for t in tasks)) or "none"
        raise InvalidSchedule(f"{where}: task {task!r} is not registered (known: {known}).")
    try:
        expression = CronExpression.parse(cron, timezone or default_timezone(), where=where)
    except ConfigurationError as exc:
        raise InvalidSchedule(str(exc)) from None
    task_object = tasks.get(task)
    settings = get_settings()
    try:
        if queue is not None:
            queue_name(queue)
        if attempts is not None:
            check_attempts(attempts)
        if priority is not None:
            check_priority(priority)
        overlap_choice(overlap)
        data = serialization.normalize(data) if data is not None else None
        serialization.encode(data, max_bytes=settings.max_payload_bytes, what=f"{where}: data")
    except (TypeError, ValueError) as exc:
        message = str(exc) if str(exc).startswith(where) else f"{where}: {exc}"
        raise InvalidSchedule(message) from None
    return CronSchedule(
        name,
        task,
        expression,
        partitions.for_schedule(raw_settings(), queue or task_object.queue or settings.default_queue, name),
        data,
        attempts,
        priority,
        source="runtime",
        overlap=overlap,
    )


def from_fields(fields: dict[str, str]) -> CronSchedule:
    """The schedule a runtime schedule's hash describes (what beats load and changes start from).
    Its task is not checked here: a beat that does not know it logs each tick it cannot build.
    Raises ConfigurationError or ValueError when the hash was damaged."""
    expression = CronExpression.parse(fields["expression"], fields.get("timezone") or "UTC", where=fields["name"])
    return CronSchedule(
        fields["name"],
        fields["task"],
        expression,
        fields["queue"],
        serialization.decode(fields.get("data"), default=None),
        int(fields["attempts"]) if fields.get("attempts") else None,
        int(fields["priority"]) if fields.get("priority") else None,
        source="runtime",
        overlap=fields.get("overlap") or "allow",
        version=int(fields.get("gen") or 0),
    )


def editable_fields(schedule: CronSchedule) -> dict[str, Any]:
    """What the admin's form and update_cron() work on, as plain values."""
    return {
        "task": schedule.task,
        "cron": schedule.expression,
        "timezone": schedule.timezone,
        "data": schedule.data,
        "queue": schedule.queue,
        "attempts": schedule.attempts,
        "priority": schedule.priority,
        "overlap": schedule.overlap,
    }


def _crons(store: RedisStore | None) -> CronStore:
    return CronStore(store or get_default_store())


def _refuse_code_name(name: str, crons: CronStore) -> None:
    if any(schedule.name == name for schedule in collect_schedules()):
        raise InvalidSchedule(
            f"cron schedule {name!r} is defined in the code or in TEMPOTASK['CRONS']: choose another name."
        )
    fields = crons.get(name)
    if fields is not None and fields.get("source") != "runtime":
        raise InvalidSchedule(
            f"cron schedule {name!r} is a {fields.get('source', 'code')} schedule: choose another name."
        )


def _definition(schedule: CronSchedule, crons: CronStore, now_ms: int) -> dict[str, str]:
    """What the schedule's hash holds, with its next run (for the admin until a beat fires it)."""
    upcoming = schedule.cron.next_after((now_ms or crons.store.server_time_ms()) // 1000)
    return {**schedule.definition(), "next_run": str(upcoming * 1000 if upcoming else 0)}


def _result(reply_result: str, name: str) -> None:
    if reply_result == "exists":
        raise InvalidSchedule(f"a cron schedule named {name!r} already exists: change it with update_cron().")
    if reply_result == "missing":
        raise CronNotFound(f"no runtime cron schedule named {name!r} exists")
    if reply_result == "not-runtime":
        raise InvalidSchedule(f"cron schedule {name!r} is defined in the code: it cannot be changed or replaced here.")


def add_cron(
    name: str,
    task: str,
    cron: str,
    *,
    timezone: str | None = None,
    data: Any = None,
    queue: str | None = None,
    attempts: int | None = None,
    priority: int | None = None,
    overlap: str = "allow",
    store: RedisStore | None = None,
    now_ms: int = 0,
) -> dict[str, Any]:
    """Create the runtime schedule ``name``: run ``task`` at every tick of ``cron`` in ``timezone``
    (default TIME_ZONE), with ``data`` on ``queue`` (default: the task's). Every running beat fires
    it from its next heartbeat on, without restart. Returns its fields.

    Raises InvalidSchedule (a ValueError) when anything is wrong, or the name is taken (by a runtime
    schedule, or one the code defines); then nothing is written. ``store`` (default: the one of
    TEMPOTASK) and ``now_ms`` (a simulated server clock; 0: Redis's own) are for tests and
    simulations, as are the same arguments of update_cron() and delete_cron().

    Example: ``add_cron("report-acme", "build_report", "0 4 * * *", timezone="Europe/Paris",
    data={"customer": "acme"}, overlap="skip")``
    """
    schedule = build(
        name,
        task,
        cron,
        timezone=timezone,
        data=data,
        queue=queue,
        attempts=attempts,
        priority=priority,
        overlap=overlap,
    )
    crons = _crons(store)
    _refuse_code_name(name, crons)
    after = editable_fields(schedule)
    change = json.dumps({"after": after}, default=str)
    reply = crons.define(name, schedule.queue, _definition(schedule, crons, now_ms), "add", change, now_ms=now_ms)
    _result(reply.result, name)
    return after


def current(name: str, crons: CronStore | None = None) -> CronSchedule:
    """The runtime schedule ``name`` as Redis holds it; CronNotFound, or InvalidSchedule when it is
    one the code defines."""
    fields = (crons or _crons(None)).get(name)
    if fields is None or "deleted" in fields:
        raise CronNotFound(f"no cron schedule named {name!r} exists")
    if fields.get("source") != "runtime":
        raise InvalidSchedule(f"cron schedule {name!r} is defined in the code: it is read-only here.")
    try:
        return from_fields(fields)
    except (ConfigurationError, KeyError, ValueError) as exc:  # only if someone edited Redis by hand
        raise InvalidSchedule(f"cron schedule {name!r} as saved cannot be read: {exc}") from None


def update_cron(
    name: str, *, store: RedisStore | None = None, now_ms: int = 0, **changes: Any
) -> dict[str, dict[str, Any]]:
    """Change the runtime schedule ``name``: any of task, cron, timezone, data, queue, attempts,
    priority, overlap (None resets timezone, queue, attempts and priority to their defaults). The
    new version starts now: ticks up to now are the old one's, ticks after it the new one's, each
    fired once by the beats. Returns what changed, ``{field: {"before": ..., "after": ...}}``.

    Raises CronNotFound, or InvalidSchedule (nothing written) when the result is invalid or ``name``
    is a schedule the code defines. Example: ``update_cron("report-acme", cron="0 5 * * *")``
    """
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise InvalidSchedule(f"update_cron({name!r}): unknown field(s) {unknown}; allowed: {list(EDITABLE)}.")
    crons = _crons(store)
    old = current(name, crons)
    before = editable_fields(old)
    fields = {**before, **changes}
    schedule = build(
        name,
        fields["task"],
        fields["cron"],
        timezone=fields["timezone"],
        data=fields["data"],
        queue=fields["queue"],
        attempts=fields["attempts"],
        priority=fields["priority"],
        overlap=fields["overlap"] or "allow",
    )
    after = editable_fields(schedule)
    diff = {key: {"before": before[key], "after": after[key]} for key in EDITABLE if before[key] != after[key]}
    change = json.dumps(diff, default=str)
    if schedule.queue == old.queue:
        definition = _definition(schedule, crons, now_ms)
        reply = crons.define(name, schedule.queue, definition, "update", change, now_ms=now_ms)
        _result(reply.result, name)
        return diff
    # Another queue holds it now: end the version in the old queue, then start the next in the new
    # one, carrying its last tick (the new version only fires ticks after its own start anyway)
    # and its pause.
    paused = (crons.get(name) or {}).get("paused")
    ended = crons.tombstone(name, old.queue, moving=True, now_ms=now_ms)
    _result(ended.result, name)
    definition = _definition(schedule, crons, now_ms)
    if paused:
        definition["paused"] = paused
    reply = crons.define(
        name,
        schedule.queue,
        definition,
        "move",
        change,
        carried_tick_ms=ended.last_tick_ms,
        carried_version=ended.version,
        now_ms=now_ms,
    )
    _result(reply.result, name)
    return diff


def delete_cron(name: str, *, store: RedisStore | None = None, now_ms: int = 0) -> dict[str, Any]:
    """Delete the runtime schedule ``name``: no tick after this moment fires, in any beat. Returns
    its fields as they were. Raises CronNotFound, or InvalidSchedule for a schedule the code defines
    (remove it from the code instead)."""
    crons = _crons(store)
    old = current(name, crons)
    reply = crons.tombstone(name, old.queue, now_ms=now_ms)
    _result(reply.result, name)
    return editable_fields(old)
