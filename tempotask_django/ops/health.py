"""Health checks for probes and monitors: ``manage.py tempotask health`` and the health view.

Four checks, in order; each reports ok or a one-line reason:

- ``redis``: Redis answers a PING within a few seconds (when it does not, nothing else is checked);
- ``workers``: a live worker serves each queue checked (the given ones, else every configured one);
- ``beat``: a cron beat is alive when cron schedules exist (in the code, settings or Redis);
- ``backlog``: each queue checked has at most ``max_waiting`` jobs waiting and its oldest waiting
  job has waited at most ``max_age`` seconds (each limit only when given).

``workers``, ``beat`` and ``backlog`` can be skipped, e.g. for a web server's readiness, which
needs Redis only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tempotask_django import validation
from tempotask_django.conf import get_settings
from tempotask_django.exceptions import ConfigurationError
from tempotask_django.ops import backend, cli
from tempotask_django.registry import registry
from tempotask_django.views.overview import served_queues

SKIPPABLE = ("workers", "beat", "backlog")


def _split(values: Iterable[str]) -> list[str]:
    """Repeated values, each possibly comma-separated ("a,b"), in order, without empty ones."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _limit(value: str | float | None, name: str, kind: type[int] | type[float]) -> Any:
    if value is None or value == "":
        return None
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a {'whole ' if kind is int else ''}number, not {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{name} must be 0 or more, not {value!r}")
    return number


@dataclass(frozen=True)
class HealthOptions:
    """What to check: the queues (empty: the configured ones), the backlog limits, checks to skip."""

    queues: tuple[str, ...] = ()
    max_waiting: int | None = None
    max_age: float | None = None
    skip: frozenset[str] = frozenset()

    @classmethod
    def parse(
        cls,
        queues: Iterable[str] = (),
        max_waiting: str | int | None = None,
        max_age: str | float | None = None,
        skip: Iterable[str] = (),
    ) -> HealthOptions:
        """Options from text (command line or query string); ValueError with a one-line reason."""
        names = tuple(dict.fromkeys(validation.queue_name(queue) for queue in _split(queues)))
        skipped = frozenset(_split(skip))
        unknown = sorted(skipped - set(SKIPPABLE))
        if unknown:
            raise ValueError(f"cannot skip {', '.join(unknown)}: only {', '.join(SKIPPABLE)} can be skipped")
        return cls(names, _limit(max_waiting, "max_waiting", int), _limit(max_age, "max_age", float), skipped)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    skipped: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "skipped": self.skipped, "detail": self.detail}


@dataclass(frozen=True)
class Health:
    """The checks' results: ``ok`` when every one passed."""

    checks: list[Check]
    queues: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def summary(self) -> str:
        """One line: "OK: ..." with what was checked, or "FAIL: ..." with every reason."""
        if self.ok:
            return "OK: " + "; ".join(check.detail for check in self.checks if not check.skipped)
        return "FAIL: " + "; ".join(check.detail for check in self.checks if not check.ok)

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.ok else "fail",
            "summary": self.summary,
            "queues": self.queues,
            "checks": {check.name: check.as_dict() for check in self.checks},
        }


def configured_queues() -> list[str]:
    """DEFAULT_QUEUE, the queues of TEMPOTASK["QUEUES"] and every queue a registered task names."""
    settings = get_settings()
    configured = [settings.default_queue, *settings.queues, *(task.queue for task in registry if task.queue)]
    return sorted(dict.fromkeys(configured))


def _skipped(name: str) -> Check:
    return Check(name, True, "skipped", skipped=True)


def check_workers(queues: list[str]) -> Check:
    workers = backend.workers()
    served = served_queues(workers)
    missing = [queue for queue in queues if queue not in served]
    if missing:
        return Check("workers", False, f"no live worker serves queue(s) {', '.join(missing)}")
    return Check("workers", True, f"{len(workers)} live worker(s) serve {', '.join(queues)}")


def _schedule_names() -> set[str]:
    return set(backend.defined_schedule_names()) | {cron.name for cron in backend.crons()}


def check_beat() -> Check:
    try:
        schedules = _schedule_names()
    except ConfigurationError as exc:
        return Check("beat", False, f"the cron schedules are misconfigured: {exc}")
    if not schedules:
        return Check("beat", True, "no cron schedules, no beat needed")
    beats = backend.beats()
    if not beats:
        return Check(
            "beat",
            False,
            f"no cron beat is alive and {len(schedules)} cron schedule(s) exist "
            "(start manage.py runcron or runworkers --with-cron)",
        )
    return Check("beat", True, f"{len(beats)} live cron beat(s) for {len(schedules)} schedule(s)")


def check_backlog(queues: list[str], max_waiting: int | None, max_age: float | None) -> Check:
    if max_waiting is None and max_age is None:
        return Check("backlog", True, "no backlog limits given", skipped=True)
    problems = []
    for stats in backend.queue_stats(queues):
        if max_waiting is not None and stats.waiting > max_waiting:
            problems.append(f"{stats.waiting} job(s) wait in {stats.queue} (limit {max_waiting})")
        age = stats.oldest_job_age
        if max_age is not None and age is not None and age > max_age:
            problems.append(f"the oldest waiting job in {stats.queue} has waited {cli.age(age)} (limit {max_age:g} s)")
    if problems:
        return Check("backlog", False, "; ".join(problems))
    limits = [f"{max_waiting} waiting"] if max_waiting is not None else []
    limits += [f"{max_age:g} s old"] if max_age is not None else []
    return Check("backlog", True, f"backlog within limits ({', '.join(limits)})")


def _unreachable(exc: Exception) -> Check:
    return Check("redis", False, f"Redis is unreachable at {get_settings().safe_redis_url}: {exc}")


def check_health(options: HealthOptions | None = None) -> Health:
    """Run the checks ``options`` asks for; never raises for a Redis failure (it is a result)."""
    options = options or HealthOptions()
    queues = list(options.queues) or configured_queues()
    try:
        backend.ping()
    except (backend.RedisError, OSError) as exc:
        return Health([_unreachable(exc), *(_skipped(name) for name in SKIPPABLE)], queues)
    checks = [Check("redis", True, "Redis reachable")]
    try:
        checks.append(_skipped("workers") if "workers" in options.skip else check_workers(queues))
        checks.append(_skipped("beat") if "beat" in options.skip else check_beat())
        if "backlog" in options.skip:
            checks.append(_skipped("backlog"))
        else:
            checks.append(check_backlog(queues, options.max_waiting, options.max_age))
    except (backend.RedisError, OSError) as exc:  # Redis went away between the checks
        return Health([_unreachable(exc), *(_skipped(name) for name in SKIPPABLE)], queues)
    return Health(checks, queues)
