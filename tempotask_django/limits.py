"""Rate and concurrency limits: parsing and checking the options, and the limit a job carries.

A task's ``rate_limit`` and ``max_concurrency`` (and a queue's ``RATE_LIMIT``) are enforced by the
claim script, atomically and by the Redis server's clock (see storage/lua/limits.lua). A job carries
its task's limits in its record, written when it is enqueued; this module builds those values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tempotask_django.validation import is_int

RATE_PATTERN = re.compile(r"^\s*(\d+)\s*/\s*([smh])\s*$")
WINDOW_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000}
# Bounds that keep a rate log (one entry per start in the window) small and a window exact.
MAX_RATE_COUNT = 100_000
MAX_CONCURRENCY = 100_000
# A limit_key value names Redis keys (as their last part): keep it printable and bounded.
MAX_LIMIT_VALUE = 200
RATE_FORMS = '"N/s", "N/m" or "N/h" with N an integer from 1 to 100000, e.g. "100/m"'


@dataclass(frozen=True)
class Rate:
    """At most ``count`` starts in any ``window_ms`` milliseconds."""

    count: int
    window_ms: int

    @property
    def wire(self) -> str:
        """The form the Lua scripts read: 'N/W' (W in ms)."""
        return f"{self.count}/{self.window_ms}"

    def __str__(self) -> str:
        unit = {v: k for k, v in WINDOW_MS.items()}[self.window_ms]
        return f"{self.count}/{unit}"


def parse_rate(value: Any, what: str = "rate_limit") -> Rate:
    """``"100/m"`` as a Rate; a ValueError naming ``what`` for anything else."""
    match = RATE_PATTERN.match(value) if isinstance(value, str) else None
    if not match or not 1 <= int(match.group(1)) <= MAX_RATE_COUNT:
        raise ValueError(f"{what} must be {RATE_FORMS}, not {value!r}")
    return Rate(int(match.group(1)), WINDOW_MS[match.group(2)])


def is_rate(value: Any) -> bool:
    try:
        parse_rate(value)
    except ValueError:
        return False
    return True


def check_max_concurrency(value: Any) -> int:
    if not is_int(value) or not 1 <= value <= MAX_CONCURRENCY:
        raise ValueError(f"max_concurrency must be an integer from 1 to {MAX_CONCURRENCY}, not {value!r}")
    return value


def check_limit_key(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > 200:
        raise ValueError(f"limit_key must be the name of a field of the job's data (a string), not {value!r}")
    return value


def limit_value(data: Any, limit_key: str, task_name: str) -> str:
    """The value of ``data[limit_key]`` as the limit id's last part: a string or an integer."""
    if not isinstance(data, dict) or limit_key not in data:
        raise ValueError(
            f"task {task_name!r} has limit_key={limit_key!r}: its data must be a dict with a {limit_key!r} field"
        )
    value = data[limit_key]
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(
            f"task {task_name!r}: data[{limit_key!r}] must be a string or an integer (its limit's key), "
            f"not {type(value).__name__}"
        )
    text = str(value)
    if not 1 <= len(text) <= MAX_LIMIT_VALUE or not text.isprintable():
        raise ValueError(
            f"task {task_name!r}: data[{limit_key!r}] must be 1-{MAX_LIMIT_VALUE} printable characters, not {value!r}"
        )
    return text


def limit_id(task_name: str, value: str | None) -> str:
    """The id of a limit: the task name, then a space and the limit_key's value when keyed.

    Task names hold no whitespace, so the first space ends the name whatever the value holds.
    """
    return task_name if value is None else f"{task_name} {value}"
