"""What a beat knows of the runtime schedules: loads them when their version counter moves, and
says which ones changed (beat.py fires what the old versions still owe, then switches); and the
log line of each fire script reply."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from tempotask_django.cron.runtime import from_fields
from tempotask_django.cron.schedules import CronSchedule
from tempotask_django.storage.crons import CronStore, Fire, FireOutcome

logger = logging.getLogger("tempotask")


@dataclass
class Reload:
    """The outcome of one reload: the schedules now in force, and the versions they replace."""

    schedules: dict[str, CronSchedule]
    retired: list[CronSchedule] = field(default_factory=list)  # changed or deleted since the last load
    started_ms: dict[str, int] = field(default_factory=dict)  # name -> when its new version began


class RuntimeSchedules:
    """The runtime schedules one beat fires, as of its last reload."""

    def __init__(self, crons: CronStore, code_names: set[str]) -> None:
        self.crons = crons
        self.code_names = code_names
        self.schedules: dict[str, CronSchedule] = {}
        self.version: int | None = None  # the counter P:crons_version at the last load

    def stale(self) -> bool:
        """True when a schedule changed since the last load (one GET)."""
        return self.crons.runtime_version() != self.version

    def reload(self) -> Reload:
        """Read every runtime schedule (two round trips) and compare with what was loaded."""
        self.version = self.crons.runtime_version()  # first: a change after this read moves it again
        loaded: dict[str, CronSchedule] = {}
        started: dict[str, int] = {}
        for name, fields in self.crons.runtime_definitions().items():
            if name in self.code_names:
                logger.error("cron %s: a runtime schedule has the name of one the code defines; not fired", name)
                continue
            old = self.schedules.get(name)
            if old is not None and old.version == int(fields.get("gen") or 0):
                loaded[name] = old
                continue
            try:
                loaded[name] = from_fields(fields)
            except Exception as exc:  # a damaged hash: this schedule only
                logger.error("cron %s: cannot read its definition from Redis: %s", name, exc)
                continue
            started[name] = int(fields.get("changed_at") or 0)
            logger.info(
                "cron %s: version %d loaded: %r (%s) -> task %s on queue %s",
                name,
                loaded[name].version,
                loaded[name].expression,
                loaded[name].timezone,
                loaded[name].task,
                loaded[name].queue,
            )
        retired = [old for name, old in self.schedules.items() if loaded.get(name) is not old]
        self.schedules = loaded
        return Reload(loaded, retired, started)


def log_reply(fire: Fire, reply: FireOutcome, catchup_ms: int) -> None:
    """Log what the fire script answered for ``fire``."""
    lag = reply.now_ms - fire.tick_ms
    if reply.outcome == "fired":
        logger.info("cron %s: enqueued job %s (%d ms after its tick)", fire.name, fire.spec.id, lag)
    elif reply.outcome == "missed":
        logger.warning(
            "cron %s: tick %s skipped: %.0f s late, beyond CRON_CATCHUP_WINDOW (%.0f s)",
            fire.name,
            fire.spec.id,
            lag / 1000,
            catchup_ms / 1000,
        )
    elif reply.outcome in ("skipped", "held", "released", "stale"):
        logger.info("cron %s: tick %s %s", fire.name, fire.spec.id, reply.outcome)
    else:  # done, not-due, paused, recheck, unknown (of a deleted schedule)
        logger.debug("cron %s: tick %s %s", fire.name, fire.spec.id, reply.outcome)
