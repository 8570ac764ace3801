"""Managing cron schedules from any process (the admin, the shell): list, pause, resume, run now;
and the live beats.

Schedules are registered in Redis by the beat (``manage.py runcron`` or ``runworkers --with-cron``)
when it starts; these functions act on what Redis holds, so every process sees the same state.
"""

from __future__ import annotations

import uuid

from tempotask_django import serialization
from tempotask_django.conf import get_settings
from tempotask_django.cron.schedules import id_part
from tempotask_django.exceptions import CronNotFound
from tempotask_django.producer import announce, build_spec
from tempotask_django.registry import registry
from tempotask_django.storage.connection import get_default_store
from tempotask_django.storage.crons import BeatInfo, CronInfo, CronStore, Fire


def _crons() -> CronStore:
    return CronStore(get_default_store())


def _not_found(name: str) -> CronNotFound:
    return CronNotFound(
        f"no cron schedule named {name!r} is registered in Redis (schedules are registered when a beat "
        "starts: manage.py runcron, or runworkers --with-cron)"
    )


def list_crons() -> list[CronInfo]:
    """Every schedule, sorted by name: code, settings and runtime ones (``source`` says which:
    "task", "settings" or "runtime"), with expression and its description, timezone, queue,
    overlap, next and last run, last job id and status, paused, skipped ticks.

    Example: ``[c.name for c in list_crons() if c.source == "runtime"]``
    """
    return _crons().list()


def list_beats() -> list[BeatInfo]:
    """The cron beats alive now (``runcron``, ``runworkers --with-cron``), most recent heartbeat first.

    Each beat renews its entry every CRON_BEAT_HEARTBEAT seconds; one that stops (or is killed) is
    gone after three missed heartbeats. Example, a health check: ``assert list_beats(), "no beat"``
    """
    return _crons().beats()


def pause_cron(name: str) -> None:
    """Stop firing ``name`` until ``resume_cron(name)``; its ticks meanwhile are skipped, not queued up.

    Raises CronNotFound when no such schedule is registered.
    """
    if not _crons().control(name, "pause"):
        raise _not_found(name)


def resume_cron(name: str) -> None:
    """Fire ``name`` again from its next tick on (ticks that passed while paused are not caught up)."""
    if not _crons().control(name, "resume"):
        raise _not_found(name)


def run_cron_now(name: str) -> str:
    """Enqueue a job of schedule ``name`` now, with its data, queue, attempts and priority; returns
    the job id. The schedule's own ticks are unaffected (this works while paused too).

    Example: ``job_id = run_cron_now("nightly-report")``
    """
    crons = _crons()
    fields = crons.get(name)
    if fields is None:
        raise _not_found(name)
    spec = build_spec(
        registry.get(fields["task"]),
        serialization.decode(fields.get("data")),
        settings=get_settings(),
        job_id=f"cron:{id_part(name)}:run-{uuid.uuid4().hex[:12]}",
        queue=fields["queue"],
        attempts=int(fields["attempts"]) if fields.get("attempts") else None,
        priority=int(fields["priority"]) if fields.get("priority") else None,
        origin=f"cron:{name}",
    )
    [reply] = crons.fire([Fire(name, spec)], catchup_ms=0)
    if isinstance(reply, Exception):  # Redis refused it (READONLY, OOM): nothing was enqueued
        raise reply
    if reply.outcome == "unknown":
        raise _not_found(name)
    announce(spec, reply.job_status)
    return spec.id
