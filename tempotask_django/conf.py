"""The TEMPOTASK setting: defaults, validation and a cached accessor.

Every key is optional. ``validate(raw)`` returns the problems as (check id, message, hint) triples;
``get_settings()`` raises ConfigurationError on the first one, and ``checks.py`` reports all of them
through ``manage.py check``. The cache is cleared whenever Django's ``setting_changed`` fires.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus, urlsplit

from django.conf import settings as django_settings

from tempotask_django.exceptions import ConfigurationError

DEFAULTS: dict[str, Any] = {
    # Where the queue lives. redis://, rediss:// or unix:// URLs.
    "REDIS_URL": "redis://localhost:6379/0",
    # True keeps every tempotask key in database N+1 of the same server (N from REDIS_URL),
    # apart from the application's own data.
    "OPTIMISE": False,
    # First part of every Redis key; change it to run several projects on one database.
    "KEY_PREFIX": "tempotask",
    # Queue of tasks that do not name one.
    "DEFAULT_QUEUE": "default",
    # Per-queue overrides: {"emails": {"CONCURRENCY": 4, "MAX_JOBS_PER_STATUS": 1000}}.
    "QUEUES": {},
    # Jobs one worker process runs at once (threads; async handlers share one event loop).
    "CONCURRENCY": 1,
    # Completed and failed jobs kept per queue; older ones are deleted with their logs.
    "MAX_JOBS_PER_STATUS": 300,
    # Seconds without a heartbeat after which another worker takes a running job over.
    "STALLED_TIMEOUT": 30,
    # Seconds a stopping worker waits for running jobs before it exits.
    "SHUTDOWN_TIMEOUT": 30,
    # A job taken over after a stall this many times is failed as a poison pill.
    "MAX_DELIVERIES": 5,
    # Dotted path to a mapping, or to a callable returning one: the handlers' ``ctx`` attributes.
    "CONTEXT": None,
    # Defaults for tasks that do not set their own.
    "ATTEMPTS": 1,
    "RETRY_DELAY": 5,
    "BACKOFF": "fixed",
    # Upper bound, in seconds, of an exponential retry delay.
    "MAX_RETRY_DELAY": 3600,
    # Largest accepted JSON payload of one job, in bytes.
    "MAX_PAYLOAD_BYTES": 1_048_576,
    # Inside a transaction, enqueue when it commits (and not at all if it rolls back).
    "ENQUEUE_ON_COMMIT": True,
    # Seconds a cron tick may be late and still fire. After downtime longer than this, the missed
    # ticks are skipped; within it, only the most recent missed tick fires (never the backlog).
    "CRON_CATCHUP_WINDOW": 3600,
    # Seconds between two heartbeats of a cron beat. The admin lists a beat while it is alive and
    # drops it after three missed heartbeats (a beat killed outright is gone within 3x this).
    "CRON_BEAT_HEARTBEAT": 10,
}

QUEUE_OVERRIDE_KEYS = {"CONCURRENCY", "MAX_JOBS_PER_STATUS"}
BACKOFF_CHOICES = ("fixed", "exponential")
URL_SCHEMES = ("redis", "rediss", "unix")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")
PREFIX_PATTERN = re.compile(r"^[A-Za-z0-9_.:\-]{1,60}$")

Problem = tuple[str, str, str]  # (check id, message, hint)


@dataclass(frozen=True)
class QueueSettings:
    concurrency: int
    max_jobs_per_status: int


@dataclass(frozen=True)
class Settings:
    """Validated, typed view of TEMPOTASK merged over DEFAULTS."""

    redis_url: str
    optimise: bool
    key_prefix: str
    default_queue: str
    concurrency: int
    max_jobs_per_status: int
    stalled_timeout: float
    shutdown_timeout: float
    max_deliveries: int
    context: str | None
    attempts: int
    retry_delay: float
    backoff: str
    max_retry_delay: float
    max_payload_bytes: int
    enqueue_on_commit: bool
    cron_catchup_window: float = float(DEFAULTS["CRON_CATCHUP_WINDOW"])
    cron_beat_heartbeat: float = float(DEFAULTS["CRON_BEAT_HEARTBEAT"])
    queues: dict[str, QueueSettings] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    def for_queue(self, queue: str) -> QueueSettings:
        """Concurrency and history size of one queue, with its overrides applied."""
        return self.queues.get(queue) or QueueSettings(self.concurrency, self.max_jobs_per_status)

    @property
    def cron_beat_ttl(self) -> float:
        """Seconds a beat stays listed after its last heartbeat: three heartbeats."""
        return 3 * self.cron_beat_heartbeat

    @property
    def safe_redis_url(self) -> str:
        return mask_url(self.redis_url)


def mask_url(url: str) -> str:
    """Return ``url`` with its password replaced by ``***`` (for logs, errors and pages).

    The password of the userinfo is masked (``redis://user:***@host``, ``redis://:***@host``; a
    username alone is kept) and so is a ``password`` query parameter (``?password=***``). The
    userinfo ends at the last ``@`` before the query string, so a password holding ``@``, ``/`` or
    ``#`` is masked whole. Works on any text, even one that is not a valid URL.
    """
    if not isinstance(url, str):
        return url
    scheme, separator, rest = url.partition("://")
    if not separator:
        scheme, rest = "", url
    head, question, query = rest.partition("?")
    userinfo, at, hostpart = head.rpartition("@")
    if at and ":" in userinfo:
        head = f"{userinfo.split(':', 1)[0]}:***@{hostpart}"
    if question:
        query, hash_sign, fragment = query.partition("#")
        query = "&".join(_mask_password_param(item) for item in query.split("&")) + hash_sign + fragment
    return f"{scheme}{separator}{head}{question}{query}"


def _mask_password_param(item: str) -> str:
    """``password=secret`` (however its name is spelled or encoded: redis-py decodes it) as ``password=***``."""
    name, equals, _ = item.partition("=")
    return f"{name}=***" if equals and unquote_plus(name).lower() == "password" else item


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_url(url: Any) -> list[Problem]:
    hint = "Use redis://[:password@]host:port/db, rediss://... or unix:///path/to/redis.sock?db=0"
    if not isinstance(url, str):
        return [("tempotask.E004", f"TEMPOTASK['REDIS_URL'] must be a string, not {type(url).__name__}.", hint)]
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        return [("tempotask.E004", f"TEMPOTASK['REDIS_URL'] {mask_url(url)!r} is not a valid URL: {exc}.", hint)]
    if parts.scheme not in URL_SCHEMES:
        msg = f"TEMPOTASK['REDIS_URL'] {mask_url(url)!r} has scheme {parts.scheme!r}; expected one of {URL_SCHEMES}."
        return [("tempotask.E004", msg, hint)]
    if parts.scheme != "unix" and not parts.hostname:
        return [("tempotask.E004", f"TEMPOTASK['REDIS_URL'] {mask_url(url)!r} names no host.", hint)]
    if parts.scheme == "unix" and not parts.path:
        return [("tempotask.E004", f"TEMPOTASK['REDIS_URL'] {mask_url(url)!r} names no socket path.", hint)]
    db = parts.path.strip("/") if parts.scheme != "unix" else ""
    if db and not db.isdigit():
        return [("tempotask.E004", f"TEMPOTASK['REDIS_URL'] database {db!r} is not a number.", hint)]
    return []


# Each simple key: (predicate, description of the expected value).
_SIMPLE_RULES: dict[str, tuple[Any, str]] = {
    "OPTIMISE": (lambda v: isinstance(v, bool), "True or False"),
    "KEY_PREFIX": (lambda v: isinstance(v, str) and PREFIX_PATTERN.match(v), "letters, digits, '_.:-' (1-60)"),
    "DEFAULT_QUEUE": (lambda v: isinstance(v, str) and NAME_PATTERN.match(v), "a queue name: letters, digits, '_.-'"),
    "CONCURRENCY": (lambda v: _is_int(v) and 1 <= v <= 1000, "an integer from 1 to 1000"),
    "MAX_JOBS_PER_STATUS": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "STALLED_TIMEOUT": (lambda v: _is_number(v) and v >= 1, "a number of seconds >= 1"),
    "SHUTDOWN_TIMEOUT": (lambda v: _is_number(v) and v >= 0, "a number of seconds >= 0"),
    "MAX_DELIVERIES": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "CONTEXT": (lambda v: v is None or (isinstance(v, str) and "." in v), "None or a dotted path"),
    "ATTEMPTS": (lambda v: _is_int(v) and 1 <= v <= 1000, "an integer from 1 to 1000"),
    "RETRY_DELAY": (lambda v: _is_number(v) and v >= 0, "a number of seconds >= 0"),
    "BACKOFF": (lambda v: v in BACKOFF_CHOICES, f"one of {BACKOFF_CHOICES}"),
    "MAX_RETRY_DELAY": (lambda v: _is_number(v) and v >= 0, "a number of seconds >= 0"),
    "MAX_PAYLOAD_BYTES": (lambda v: _is_int(v) and v >= 64, "an integer >= 64"),
    "ENQUEUE_ON_COMMIT": (lambda v: isinstance(v, bool), "True or False"),
    "CRON_CATCHUP_WINDOW": (lambda v: _is_number(v) and v >= 1, "a number of seconds >= 1"),
    "CRON_BEAT_HEARTBEAT": (lambda v: _is_number(v) and 0.5 <= v <= 3600, "a number of seconds from 0.5 to 3600"),
}

# Keys other features own (validated by their own modules); accepted here so they are not "unknown".
EXTENSION_KEYS: set[str] = {"CRONS"}


def _check_queues(queues: Any) -> list[Problem]:
    hint = 'Example: {"emails": {"CONCURRENCY": 4}}'
    if not isinstance(queues, dict):
        return [("tempotask.E005", "TEMPOTASK['QUEUES'] must be a dict of queue name -> overrides.", hint)]
    problems: list[Problem] = []
    for name, overrides in queues.items():
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            problems.append(("tempotask.E005", f"TEMPOTASK['QUEUES'] has an invalid queue name {name!r}.", hint))
            continue
        if not isinstance(overrides, dict):
            problems.append(("tempotask.E005", f"TEMPOTASK['QUEUES'][{name!r}] must be a dict.", hint))
            continue
        for key, value in overrides.items():
            if key not in QUEUE_OVERRIDE_KEYS:
                msg = f"TEMPOTASK['QUEUES'][{name!r}] has unknown key {key!r}."
                problems.append(("tempotask.E005", msg, f"Allowed: {sorted(QUEUE_OVERRIDE_KEYS)}"))
            elif not _SIMPLE_RULES[key][0](value):
                msg = f"TEMPOTASK['QUEUES'][{name!r}][{key!r}] must be {_SIMPLE_RULES[key][1]}, not {value!r}."
                problems.append(("tempotask.E005", msg, hint))
    return problems


def validate(raw: Any) -> list[Problem]:
    """Every problem of a TEMPOTASK value, without raising."""
    if not isinstance(raw, dict):
        return [("tempotask.E001", "The TEMPOTASK setting must be a dict.", "TEMPOTASK = {'REDIS_URL': ...}")]
    problems: list[Problem] = []
    known = set(DEFAULTS) | EXTENSION_KEYS
    for key in raw:
        if key not in known:
            close = [k for k in sorted(known) if k.replace("_", "") == str(key).upper().replace("_", "")]
            hint = f"Did you mean {close[0]!r}?" if close else f"Known keys: {', '.join(sorted(known))}"
            problems.append(("tempotask.E002", f"TEMPOTASK has an unknown key {key!r}.", hint))
    merged = {**DEFAULTS, **raw}
    problems += _check_url(merged["REDIS_URL"])
    for key, (is_valid, expected) in _SIMPLE_RULES.items():
        if not is_valid(merged[key]):
            msg = f"TEMPOTASK[{key!r}] must be {expected}, not {merged[key]!r}."
            problems.append(("tempotask.E003", msg, f"Default: {DEFAULTS[key]!r}"))
    problems += _check_queues(merged["QUEUES"])
    return problems


def build_settings(raw: dict[str, Any]) -> Settings:
    """Validate ``raw`` and return Settings, raising ConfigurationError on the first problem."""
    problems = validate(raw)
    if problems:
        check_id, message, hint = problems[0]
        raise ConfigurationError(f"{message} ({check_id}) {hint}")
    merged = {**DEFAULTS, **raw}
    queues = {
        name: QueueSettings(
            concurrency=overrides.get("CONCURRENCY", merged["CONCURRENCY"]),
            max_jobs_per_status=overrides.get("MAX_JOBS_PER_STATUS", merged["MAX_JOBS_PER_STATUS"]),
        )
        for name, overrides in merged["QUEUES"].items()
    }
    return Settings(
        redis_url=merged["REDIS_URL"],
        optimise=merged["OPTIMISE"],
        key_prefix=merged["KEY_PREFIX"],
        default_queue=merged["DEFAULT_QUEUE"],
        concurrency=merged["CONCURRENCY"],
        max_jobs_per_status=merged["MAX_JOBS_PER_STATUS"],
        stalled_timeout=float(merged["STALLED_TIMEOUT"]),
        shutdown_timeout=float(merged["SHUTDOWN_TIMEOUT"]),
        max_deliveries=merged["MAX_DELIVERIES"],
        context=merged["CONTEXT"],
        attempts=merged["ATTEMPTS"],
        retry_delay=float(merged["RETRY_DELAY"]),
        backoff=merged["BACKOFF"],
        max_retry_delay=float(merged["MAX_RETRY_DELAY"]),
        max_payload_bytes=merged["MAX_PAYLOAD_BYTES"],
        enqueue_on_commit=merged["ENQUEUE_ON_COMMIT"],
        cron_catchup_window=float(merged["CRON_CATCHUP_WINDOW"]),
        cron_beat_heartbeat=float(merged["CRON_BEAT_HEARTBEAT"]),
        queues=queues,
        raw=dict(raw),
    )


def raw_settings() -> Any:
    return getattr(django_settings, "TEMPOTASK", {})


@functools.cache
def get_settings() -> Settings:
    """The current, validated settings (cached until a setting changes)."""
    return build_settings(raw_settings())


def reset_on_setting_changed(setting: str, **kwargs: Any) -> None:
    """Receiver for Django's setting_changed (connected in AppConfig.ready)."""
    if setting in {"TEMPOTASK", "TIME_ZONE"}:
        get_settings.cache_clear()
        from tempotask_django.storage.connection import reset_default_store

        reset_default_store()
