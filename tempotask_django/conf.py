"""The TEMPOTASK setting: one table of keys (default, validator, doc), and a cached accessor.

Every key is optional. ``SETTINGS`` is the one list of keys: defaults, validation, ``manage.py
check`` and the settings table of docs/reference.md all follow it. ``validate(raw)`` returns every Problem;
``get_settings()`` raises ConfigurationError on the first one, and ``checks.py`` reports all of them
through ``manage.py check``. The cache is cleared whenever Django's ``setting_changed`` fires.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus, urlsplit

from django.conf import settings as django_settings
from redis.connection import parse_url

from tempotask_django import partitions
from tempotask_django.limits import RATE_FORMS, Rate, is_rate, parse_rate
from tempotask_django.validation import (
    BACKOFF_CHOICES,
    MAX_SECONDS,
    NAME_PATTERN,
    Problem,
    is_int,
    is_number,
    raise_first,
)

URL_SCHEMES = ("redis", "rediss", "unix")
PREFIX_PATTERN = re.compile(r"^[A-Za-z0-9_.:\-]{1,60}$")
URL_HINT = "Use redis://[:password@]host:port/db, rediss://... or unix:///path/to/redis.sock?db=0"
QUEUES_HINT = 'Example: {"emails": {"CONCURRENCY": 4}}'


@dataclass(frozen=True)
class Rule:
    """A simple validator: ``test(value)`` is true for a good value; ``expected`` says what one is."""

    test: Callable[[Any], Any]
    expected: str

    def __call__(self, setting: Setting, value: Any) -> list[Problem]:
        if self.test(value):
            return []
        message = f"TEMPOTASK[{setting.key!r}] must be {self.expected}, not {value!r}."
        return [Problem("tempotask.E003", message, f"Default: {setting.default!r}")]


Validator = Callable[["Setting", Any], list[Problem]]


@dataclass(frozen=True)
class Setting:
    """One key of TEMPOTASK: its default, its validator, what it means (``doc``, as docs/reference.md says
    it) and ``convert``, which turns a valid value into the Settings attribute named ``key.lower()``.

    ``validator`` None: the key belongs to a feature that reads and checks it itself (``CRONS``:
    schedules.py), and is not a Settings attribute.
    """

    key: str
    default: Any
    validator: Validator | None
    doc: str
    convert: Callable[[Any], Any] = lambda value: value

    @property
    def attribute(self) -> str:
        return self.key.lower()


def _check_url(setting: Setting, url: Any) -> list[Problem]:
    hint = URL_HINT
    if not isinstance(url, str):
        return [Problem("tempotask.E004", f"TEMPOTASK['REDIS_URL'] must be a string, not {type(url).__name__}.", hint)]
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        return [Problem("tempotask.E004", f"TEMPOTASK['REDIS_URL'] {mask_url(url)!r} is not a valid URL: {exc}.", hint)]
    if parts.scheme not in URL_SCHEMES:
        msg = f"TEMPOTASK['REDIS_URL'] {mask_url(url)!r} has scheme {parts.scheme!r}; expected one of {URL_SCHEMES}."
        return [Problem("tempotask.E004", msg, hint)]
    if parts.scheme != "unix" and not parts.hostname:
        return [Problem("tempotask.E004", f"TEMPOTASK['REDIS_URL'] {mask_url(url)!r} names no host.", hint)]
    if parts.scheme == "unix" and not parts.path:
        return [Problem("tempotask.E004", f"TEMPOTASK['REDIS_URL'] {mask_url(url)!r} names no socket path.", hint)]
    db = parts.path.strip("/") if parts.scheme != "unix" else ""
    if db and not db.isdigit():
        return [Problem("tempotask.E004", f"TEMPOTASK['REDIS_URL'] database {db!r} is not a number.", hint)]
    return []


def _check_queues(setting: Setting, queues: Any) -> list[Problem]:
    hint = QUEUES_HINT
    if not isinstance(queues, dict):
        return [Problem("tempotask.E005", "TEMPOTASK['QUEUES'] must be a dict of queue name -> overrides.", hint)]
    problems: list[Problem] = []
    for name, overrides in queues.items():
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            problems.append(Problem("tempotask.E005", f"TEMPOTASK['QUEUES'] has an invalid queue name {name!r}.", hint))
            continue
        if not isinstance(overrides, dict):
            problems.append(Problem("tempotask.E005", f"TEMPOTASK['QUEUES'][{name!r}] must be a dict.", hint))
            continue
        for key, value in overrides.items():
            rule = QUEUE_OVERRIDES.get(key)
            if rule is None:
                msg = f"TEMPOTASK['QUEUES'][{name!r}] has unknown key {key!r}."
                problems.append(Problem("tempotask.E005", msg, f"Allowed: {sorted(QUEUE_OVERRIDES)}"))
            elif not rule.test(value):
                msg = f"TEMPOTASK['QUEUES'][{name!r}][{key!r}] must be {rule.expected}, not {value!r}."
                problems.append(Problem("tempotask.E005", msg, hint))
        if isinstance(overrides, dict) and overrides.get("PARTITIONS", 1) != 1 and "RATE_LIMIT" in overrides:
            # A rate log is one key: shared by N partitions (N hash slots), it could not be kept atomically.
            msg = (
                f"TEMPOTASK['QUEUES'][{name!r}] sets PARTITIONS and RATE_LIMIT, which a partitioned queue cannot keep."
            )
            hint = "Remove RATE_LIMIT (or PARTITIONS): a queue's rate limit needs all its jobs in one hash slot."
            problems.append(Problem("tempotask.E005", msg, hint))
    return problems


CONCURRENCY_RULE = Rule(lambda v: is_int(v) and 1 <= v <= 1000, "an integer from 1 to 1000")
HISTORY_RULE = Rule(lambda v: is_int(v) and v >= 1, "an integer >= 1")
TIMEOUT_RULE = Rule(
    lambda v: v is None or (is_number(v) and 0 < v <= MAX_SECONDS), "None or a positive number of seconds"
)
# Keys a queue of QUEUES may override, with their rules.
RATE_RULE = Rule(is_rate, RATE_FORMS)
PARTITIONS_RULE = Rule(
    lambda v: is_int(v) and 1 <= v <= partitions.MAX_PARTITIONS, f"an integer from 1 to {partitions.MAX_PARTITIONS}"
)
QUEUE_OVERRIDES = {
    "CONCURRENCY": CONCURRENCY_RULE,
    "MAX_JOBS_PER_STATUS": HISTORY_RULE,
    "PARTITIONS": PARTITIONS_RULE,
    "RATE_LIMIT": RATE_RULE,
    "TIMEOUT": TIMEOUT_RULE,
}

MODES = ("redis", "immediate")
REDIS_MODES = ("standalone", "cluster", "sentinel")
SENTINEL_HINT = (
    'Example: "REDIS_MODE": "sentinel", "SENTINELS": ["10.0.0.1:26379", "10.0.0.2:26379"], '
    '"SENTINEL_MASTER": "mymaster"'
)
HOST_PORT = re.compile(r"^(?P<host>[^\s:]+|\[[0-9A-Fa-f:.]+\]):(?P<port>[0-9]{1,5})$")


def parse_sentinel(address: str) -> tuple[str, int] | None:
    """``"host:port"`` as (host, port), or None when it is not one (port 1-65535; IPv6 in brackets)."""
    match = HOST_PORT.match(address) if isinstance(address, str) else None
    if not match or not 1 <= int(match["port"]) <= 65535:
        return None
    return match["host"].strip("[]"), int(match["port"])


def _check_sentinels(setting: Setting, sentinels: Any) -> list[Problem]:
    if not isinstance(sentinels, list | tuple):
        msg = f"TEMPOTASK['SENTINELS'] must be a list of \"host:port\" strings, not {sentinels!r}."
        return [Problem("tempotask.E012", msg, SENTINEL_HINT)]
    bad = [address for address in sentinels if parse_sentinel(address) is None]
    if bad:
        msg = f"TEMPOTASK['SENTINELS'] has entries that are not \"host:port\": {bad!r}."
        return [Problem("tempotask.E012", msg, SENTINEL_HINT)]
    return []


def _mode_problems(raw: dict[str, Any]) -> list[Problem]:
    """Combinations of REDIS_MODE, SENTINELS, SENTINEL_MASTER and REDIS_URL that cannot work."""
    mode = raw.get("REDIS_MODE", "standalone")
    sentinels, master = raw.get("SENTINELS", []), raw.get("SENTINEL_MASTER")
    if mode not in REDIS_MODES:  # E003 already
        return []
    if mode == "cluster":
        return _cluster_problems(raw)
    if mode != "sentinel":
        given = [key for key in ("SENTINELS", "SENTINEL_MASTER") if raw.get(key)]
        if not given:
            return []
        msg = f"TEMPOTASK sets {' and '.join(given)}, which only apply when REDIS_MODE is 'sentinel' (it is {mode!r})."
        return [Problem("tempotask.E013", msg, 'Set "REDIS_MODE": "sentinel", or remove ' + " and ".join(given) + ".")]
    problems = []
    if not sentinels:
        msg = "TEMPOTASK['REDIS_MODE'] is 'sentinel' but SENTINELS names no sentinel."
        problems.append(Problem("tempotask.E011", msg, SENTINEL_HINT))
    if not master:
        msg = "TEMPOTASK['REDIS_MODE'] is 'sentinel' but SENTINEL_MASTER (the name the sentinels monitor) is not set."
        problems.append(Problem("tempotask.E011", msg, SENTINEL_HINT))
    url = raw.get("REDIS_URL", "")
    if isinstance(url, str) and url.startswith("unix:"):
        msg = "TEMPOTASK['REDIS_URL'] is a unix socket, but in sentinel mode the sentinels name the master's host."
        hint = "Use redis://[:password@]any-host/db or rediss://...: only its password, database and TLS are used."
        problems.append(Problem("tempotask.E011", msg, hint))
    return problems


CLUSTER_HINT = 'Example: "REDIS_MODE": "cluster", "REDIS_URL": "rediss://:password@node1.example.com:6379/0"'


def _cluster_problems(raw: dict[str, Any]) -> list[Problem]:
    """Cluster mode: a Redis Cluster has database 0 only (so no OPTIMISE) and no unix socket."""
    problems = []
    if raw.get("SENTINELS") or raw.get("SENTINEL_MASTER"):
        given = [key for key in ("SENTINELS", "SENTINEL_MASTER") if raw.get(key)]
        msg = f"TEMPOTASK sets {' and '.join(given)}, which only apply when REDIS_MODE is 'sentinel' (it is 'cluster')."
        problems.append(Problem("tempotask.E013", msg, "Remove " + " and ".join(given) + "."))
    if raw.get("OPTIMISE"):
        msg = "TEMPOTASK['OPTIMISE'] is True, but a Redis Cluster has database 0 only (OPTIMISE uses database N+1)."
        hint = "Set \"OPTIMISE\": False, and use KEY_PREFIX to keep tempotask's keys apart from your app's."
        problems.append(Problem("tempotask.E014", msg, hint))
    url = raw.get("REDIS_URL", DEFAULTS_URL)
    if isinstance(url, str) and url.startswith("unix:"):
        msg = "TEMPOTASK['REDIS_URL'] is a unix socket, but in cluster mode it names a startup node by host and port."
        problems.append(Problem("tempotask.E014", msg, CLUSTER_HINT))
    elif isinstance(url, str) and _url_database(url) not in (None, 0):
        msg = f"TEMPOTASK['REDIS_URL'] selects database {_url_database(url)}, but a Redis Cluster has database 0 only."
        problems.append(Problem("tempotask.E014", msg, "End REDIS_URL with /0 (or no database). " + CLUSTER_HINT))
    return problems


def _url_database(url: str) -> int | None:
    """The database a redis:// URL selects (its path or ``db=`` parameter), None when it names none
    or cannot be read (E004 reports a bad URL)."""
    try:
        db = parse_url(url).get("db")
    except ValueError:
        return None
    return None if db is None else int(db)


DEFAULTS_URL = "redis://localhost:6379/0"

SETTINGS: tuple[Setting, ...] = (
    Setting(
        "MODE",
        "redis",
        Rule(lambda v: v in MODES, f"one of {MODES}"),
        '`"immediate"`: enqueue runs the job at once in the caller, on an in-memory Redis (tests; needs '
        "`tempotask-django[testing]`); see [Testing your tasks](testing.md)",
    ),
    Setting(
        "REDIS_URL",
        "redis://localhost:6379/0",
        _check_url,
        "`redis://`, `rediss://` or `unix://`; the password (`user:password@`, even one holding `@`, or a "
        "`password=` query parameter) never appears in logs, errors or pages",
    ),
    Setting(
        "REDIS_MODE",
        "standalone",
        Rule(lambda v: v in REDIS_MODES, f"one of {REDIS_MODES}"),
        '`"standalone"`: one server at `REDIS_URL`; `"sentinel"`: the master that `SENTINELS` name, followed '
        'across failovers; `"cluster"`: a Redis Cluster whose startup node is `REDIS_URL` (database 0, no '
        "`OPTIMISE`); see [Redis Sentinel and Cluster](redis-modes.md)",
    ),
    Setting(
        "SENTINELS",
        [],
        _check_sentinels,
        'sentinel mode: the sentinels, `["host:port", ...]`; `REDIS_URL` still gives the password, database and TLS',
        lambda v: tuple(parse_sentinel(address) for address in v),
    ),
    Setting(
        "SENTINEL_MASTER",
        None,
        Rule(lambda v: v is None or (isinstance(v, str) and v.strip() == v and v != ""), "None or a name"),
        "sentinel mode: the name under which the sentinels monitor the master",
    ),
    Setting(
        "OPTIMISE",
        False,
        Rule(lambda v: isinstance(v, bool), "True or False"),
        "keep every tempotask key in database N+1 of the same server, apart from your app's data in N",
    ),
    Setting(
        "KEY_PREFIX",
        "tempotask",
        Rule(lambda v: isinstance(v, str) and PREFIX_PATTERN.match(v), "letters, digits, '_.:-' (1-60)"),
        "first part of every key; use another to share one database between projects",
    ),
    Setting(
        "DEFAULT_QUEUE",
        "default",
        Rule(lambda v: isinstance(v, str) and NAME_PATTERN.match(v), "a queue name: letters, digits, '_.-'"),
        "queue of tasks that name none",
    ),
    Setting(
        "CONCURRENCY",
        1,
        CONCURRENCY_RULE,
        "jobs one worker process runs at once",
    ),
    Setting(
        "MAX_JOBS_PER_STATUS",
        300,
        HISTORY_RULE,
        "completed and failed jobs kept per queue",
    ),
    Setting(
        "STALLED_TIMEOUT",
        30,
        Rule(lambda v: is_number(v) and v >= 1, "a number of seconds >= 1"),
        "seconds without a lease renewal before a running job is taken over",
        float,
    ),
    Setting(
        "SHUTDOWN_TIMEOUT",
        30,
        Rule(lambda v: is_number(v) and v >= 0, "a number of seconds >= 0"),
        "seconds a stopping worker waits for running jobs",
        float,
    ),
    Setting(
        "MAX_DELIVERIES",
        5,
        Rule(lambda v: is_int(v) and v >= 1, "an integer >= 1"),
        "a job delivered more times than this (taken over after its workers died) fails as a poison pill; "
        "keep it at 3 or more so a job taken over twice can run alone first",
    ),
    Setting(
        "CONTEXT",
        None,
        Rule(lambda v: v is None or (isinstance(v, str) and "." in v), "None or a dotted path"),
        "dotted path to a dict, or a function returning one: the attributes of `ctx`",
    ),
    Setting(
        "ATTEMPTS",
        1,
        Rule(lambda v: is_int(v) and 1 <= v <= 1000, "an integer from 1 to 1000"),
        "default total tries",
    ),
    Setting(
        "RETRY_DELAY",
        5,
        Rule(lambda v: is_number(v) and v >= 0, "a number of seconds >= 0"),
        "default seconds before a retry",
        float,
    ),
    Setting(
        "BACKOFF",
        "fixed",
        Rule(lambda v: v in BACKOFF_CHOICES, f"one of {BACKOFF_CHOICES}"),
        'default backoff: `"fixed"` or `"exponential"`',
    ),
    Setting(
        "MAX_RETRY_DELAY",
        3600,
        Rule(lambda v: is_number(v) and v >= 0, "a number of seconds >= 0"),
        "cap of an exponential retry delay, seconds",
        float,
    ),
    Setting(
        "DEFAULT_TIMEOUT",
        None,
        TIMEOUT_RULE,
        "seconds a job's handler may run before `JobTimeout` is raised in it (`None`: no limit); "
        "see [Job control](job-control.md)",
        lambda v: None if v is None else float(v),
    ),
    Setting(
        "TIMEOUT_GRACE",
        5,
        Rule(lambda v: is_number(v) and 0.1 <= v <= 3600, "a number of seconds from 0.1 to 3600"),
        "seconds a handler may take to stop after `JobTimeout` or `JobCancelled`; then its worker process "
        "records it (failed or cancelled) and restarts; keep it below STALLED_TIMEOUT / 2",
        float,
    ),
    Setting(
        "MAX_PAYLOAD_BYTES",
        1_048_576,
        Rule(lambda v: is_int(v) and v >= 64, "an integer >= 64"),
        "largest JSON payload of one job",
    ),
    Setting(
        "MAX_LOG_LINES_PER_JOB",
        1000,
        Rule(lambda v: is_int(v) and v >= 1, "an integer >= 1"),
        "log lines kept per job (the newest)",
    ),
    Setting(
        "MAX_LOG_LINE_BYTES",
        10_000,
        Rule(lambda v: is_int(v) and v >= 100, "an integer >= 100"),
        "longest log line kept, bytes of JSON; a longer one is cut and says so",
    ),
    Setting(
        "MAX_ERRORS_PER_JOB",
        20,
        Rule(lambda v: is_int(v) and v >= 1, "an integer >= 1"),
        "error records kept per job, one per failed attempt (the newest; never fewer than MAX_DELIVERIES)",
    ),
    Setting(
        "ENQUEUE_REPLICAS",
        0,
        Rule(lambda v: is_int(v) and 0 <= v <= 100, "an integer from 0 to 100"),
        "replicas that must hold a job before an enqueue returns (`WAIT`); fewer within "
        "`ENQUEUE_REPLICAS_TIMEOUT` raise `NotReplicated`; see [Durable enqueue](redis-modes.md#durable-enqueue)",
    ),
    Setting(
        "ENQUEUE_REPLICAS_TIMEOUT",
        1.0,
        Rule(lambda v: is_number(v) and 0 < v <= 60, "a number of seconds from 0 to 60"),
        "seconds an enqueue waits for `ENQUEUE_REPLICAS` replicas to acknowledge it",
        float,
    ),
    Setting(
        "ENQUEUE_ON_COMMIT",
        True,
        Rule(lambda v: isinstance(v, bool), "True or False"),
        "inside a transaction, enqueue on commit",
    ),
    Setting(
        "CRONS",
        {},
        None,
        'named schedules: `{"name": {"task": ..., "cron": ..., "data": ..., "queue": ..., "timezone": ..., '
        '"attempts": ..., "priority": ...}}`',
    ),
    Setting(
        "CRON_CATCHUP_WINDOW",
        3600,
        Rule(lambda v: is_number(v) and v >= 1, "a number of seconds >= 1"),
        "seconds a cron tick may be late and still fire (after downtime, only the most recent missed tick fires)",
        float,
    ),
    Setting(
        "CRON_BEAT_HEARTBEAT",
        10,
        Rule(lambda v: is_number(v) and 0.5 <= v <= 3600, "a number of seconds from 0.5 to 3600"),
        "seconds between two heartbeats of a cron beat (0.5 to 3600); the admin drops a beat after three missed ones",
        float,
    ),
    Setting(
        "METRICS_TOKEN",
        None,
        Rule(lambda v: v is None or (isinstance(v, str) and len(v) >= 16), "None or a string of 16+ characters"),
        "bearer token Prometheus sends to scrape `metrics/` (`tempotask_django.urls`); staff users who may "
        "view the dashboard need none",
    ),
    # Last: its problems are reported after those of the values it overrides.
    Setting(
        "QUEUES",
        {},
        _check_queues,
        'per-queue overrides: `{"emails": {"CONCURRENCY": 4, "MAX_JOBS_PER_STATUS": 1000, "RATE_LIMIT": "10/s", '
        '"TIMEOUT": 60}, "events": {"PARTITIONS": 8}}` (`RATE_LIMIT`: at most N jobs of the queue started in any '
        "second, minute or hour, fleet-wide; see [Limits and progress](limits-and-progress.md); `TIMEOUT`: see "
        "[Job control](job-control.md); `PARTITIONS`: 1 to 1024, the queue split over N hash tags so that a "
        "Redis Cluster spreads it over its masters, not with `RATE_LIMIT`; see "
        "[Partitioned queues](redis-modes.md#partitioned-queues))",
    ),
)
DEFAULTS: dict[str, Any] = {setting.key: setting.default for setting in SETTINGS}


@dataclass(frozen=True)
class QueueSettings:
    concurrency: int
    max_jobs_per_status: int
    rate_limit: Rate | None = None
    timeout: float | None = None
    partitions: int = 1


@dataclass(frozen=True)
class Settings:
    """Validated, typed view of TEMPOTASK merged over the defaults: one attribute per key of
    SETTINGS (its name in lower case), but CRONS."""

    mode: str
    redis_mode: str
    sentinels: tuple[tuple[str, int], ...]
    sentinel_master: str | None
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
    default_timeout: float | None
    timeout_grace: float
    max_payload_bytes: int
    max_log_lines_per_job: int
    max_log_line_bytes: int
    max_errors_per_job: int
    enqueue_replicas: int
    enqueue_replicas_timeout: float
    enqueue_on_commit: bool
    cron_catchup_window: float
    cron_beat_heartbeat: float
    metrics_token: str | None
    queues: dict[str, QueueSettings] = field(default_factory=dict)

    def for_queue(self, queue: str) -> QueueSettings:
        """Concurrency, history size, rate limit, time limit and partitions of one queue, with its
        overrides applied. A partition (``emails~3of8``) has its queue's settings, but keeps its share
        of the history: MAX_JOBS_PER_STATUS / N (rounded up), so the queue as a whole keeps about
        MAX_JOBS_PER_STATUS."""
        found = self.queues.get(queue)
        if found is not None:
            return found
        partition = partitions.parse(queue)
        if partition is not None:
            whole = self.for_queue(partition.queue)
            share = -(-whole.max_jobs_per_status // partition.count)
            return dataclasses.replace(whole, max_jobs_per_status=share, partitions=1)
        return QueueSettings(self.concurrency, self.max_jobs_per_status, timeout=self.default_timeout)

    @property
    def cron_beat_ttl(self) -> float:
        """Seconds a beat stays listed after its last heartbeat: three heartbeats."""
        return 3 * self.cron_beat_heartbeat

    @property
    def immediate(self) -> bool:
        """MODE is "immediate": jobs run in the process that enqueues them, on an in-memory Redis."""
        return self.mode == "immediate"

    @property
    def safe_redis_url(self) -> str:
        """REDIS_URL without its password (for logs, errors and pages); in sentinel mode, with the
        master's name and the sentinels, since the URL's host is not used."""
        if self.redis_mode == "sentinel":
            sentinels = ",".join(f"{host}:{port}" for host, port in self.sentinels)
            return f"master {self.sentinel_master!r} of sentinels {sentinels} ({mask_url(self.redis_url)})"
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


def validate(raw: Any) -> list[Problem]:
    """Every problem of a TEMPOTASK value, without raising."""
    if not isinstance(raw, dict):
        return [Problem("tempotask.E001", "The TEMPOTASK setting must be a dict.", "TEMPOTASK = {'REDIS_URL': ...}")]
    problems: list[Problem] = []
    for key in raw:
        if key not in DEFAULTS:
            close = [k for k in sorted(DEFAULTS) if k.replace("_", "") == str(key).upper().replace("_", "")]
            hint = f"Did you mean {close[0]!r}?" if close else f"Known keys: {', '.join(sorted(DEFAULTS))}"
            problems.append(Problem("tempotask.E002", f"TEMPOTASK has an unknown key {key!r}.", hint))
    for setting in SETTINGS:
        if setting.validator is not None:
            problems += setting.validator(setting, raw.get(setting.key, setting.default))
    problems += _mode_problems(raw)
    return problems


def build_settings(raw: dict[str, Any]) -> Settings:
    """Validate ``raw`` and return Settings, raising ConfigurationError on the first problem."""
    raise_first(validate(raw))
    merged = {**DEFAULTS, **raw}
    values = {
        setting.attribute: setting.convert(merged[setting.key]) for setting in SETTINGS if setting.validator is not None
    }
    # QUEUES becomes the settings of each queue, its overrides over the global values.
    values["queues"] = {
        name: QueueSettings(
            concurrency=overrides.get("CONCURRENCY", merged["CONCURRENCY"]),
            max_jobs_per_status=overrides.get("MAX_JOBS_PER_STATUS", merged["MAX_JOBS_PER_STATUS"]),
            rate_limit=parse_rate(overrides["RATE_LIMIT"]) if "RATE_LIMIT" in overrides else None,
            timeout=_seconds_or_none(overrides.get("TIMEOUT", merged["DEFAULT_TIMEOUT"])),
            partitions=overrides.get("PARTITIONS", 1),
        )
        for name, overrides in merged["QUEUES"].items()
    }
    return Settings(**values)


def _seconds_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


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
