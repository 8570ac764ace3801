"""Plain-English descriptions of cron expressions, for the admin and logs. Pure (no I/O); croniter
splits the expression into its fields.

``describe("*/10 9-17 * * 1-5")`` gives "Every 10 minutes, between 09:00 and 17:59, Monday through
Friday". Expressions using syntax this module does not spell out (``L``, ``W``, ``#``, ``?``,
a year field) are returned as they are.
"""

from __future__ import annotations

import re

from croniter import croniter

ALIASES = {
    "@hourly": "Every hour",
    "@daily": "Every day at 00:00",
    "@midnight": "Every day at 00:00",
    "@weekly": "Every Sunday at 00:00",
    "@monthly": "At 00:00 on day 1 of the month",
    "@yearly": "At 00:00 on January 1",
    "@annually": "At 00:00 on January 1",
}
DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = [
    "",
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
_NAMES = {name[:3].lower(): str(i) for i, name in enumerate(DAYS[:7])} | {
    name[:3].lower(): str(i) for i, name in enumerate(MONTHS) if name
}
_TOKEN = re.compile(r"^(\*|\d+(?:-\d+)?)(?:/(\d+))?$")


class _Unsupported(ValueError):
    pass


def _parts(field: str) -> list[tuple[str, int | None]]:
    """Split a field into (base, step) items: base is "*", "n" or "a-b"."""
    parts = []
    for item in field.split(","):
        item = re.sub(r"[a-z]{3}", lambda m: _NAMES.get(m.group(0), m.group(0)), item.lower())
        match = _TOKEN.match(item)
        if not match:
            raise _Unsupported(item)
        parts.append((match.group(1), int(match.group(2)) if match.group(2) else None))
    return parts


def _values(field: str) -> list[int] | None:
    """The plain values of a field made only of numbers, else None."""
    parts = _parts(field)
    if all(step is None and base.isdigit() for base, step in parts):
        return [int(base) for base, _ in parts]
    return None


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _list(field: str, unit: str, name=str) -> str:
    """'minute 5', 'minutes 0 and 30', 'every 2nd hour', 'minutes 10 through 20'."""
    words = []
    for base, step in _parts(field):
        if base == "*":
            words.append(f"every {unit}" if step in (None, 1) else f"every {_ordinal(step)} {unit}")
        elif "-" in base:
            low, high = base.split("-")
            span = f"{name(int(low))} through {name(int(high))}"
            words.append(span if step in (None, 1) else f"every {_ordinal(step)} {unit} from {span}")
        else:
            words.append(name(int(base)) if step is None else f"every {_ordinal(step)} {unit} from {name(int(base))}")
    if not all(w[0].isdigit() for w in words):
        return _join(words)
    plural = len(words) > 1 or "through" in words[0]
    return f"{unit}{'s' if plural else ''} {_join(words)}"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _every(field: str, unit: str) -> str | None:
    """'Every minute' / 'Every 5 minutes' for '*' and '*/n' alone, else None."""
    parts = _parts(field)
    if len(parts) == 1 and parts[0][0] == "*":
        step = parts[0][1]
        return f"Every {unit}" if step in (None, 1) else f"Every {step} {unit}s"
    return None


def _time(second: str, minute: str, hour: str) -> str:
    seconds, minutes, hours = _values(second), _values(minute), _values(hour)
    if seconds is not None and minutes is not None and hours is not None and len(minutes) * len(hours) <= 4:
        shown = [f"{h:02d}:{m:02d}" + (f":{s:02d}" if s else "") for h in hours for m in minutes for s in seconds]
        return "At " + _join(shown)
    if seconds != [0]:
        head = _every(second, "second") or f"At {_list(second, 'second')}"
        rest = _minute_and_hour(minute, hour, lead=False)
        return head + (", " + rest if rest else "")
    return _minute_and_hour(minute, hour, lead=True)


def _minute_and_hour(minute: str, hour: str, *, lead: bool) -> str:
    every_minute, every_hour = _every(minute, "minute"), _every(hour, "hour")
    if every_minute and every_hour == "Every hour":
        if lead:
            return every_minute
        return "" if every_minute == "Every minute" else f"during {_list(minute, 'minute')}"
    if every_hour and _values(minute) is not None:
        if not lead:
            return f"at {_list(minute, 'minute')} of {every_hour.lower()}"
        return every_hour if _values(minute) == [0] else f"{every_hour} at {_list(minute, 'minute')}"
    first = every_minute or f"At {_list(minute, 'minute')}"
    if not lead:
        first = first[0].lower() + first[1:]
    hours = _parts(hour)
    if len(hours) == 1 and "-" in hours[0][0] and hours[0][1] is None:
        low, high = hours[0][0].split("-")
        return f"{first}, between {int(low):02d}:00 and {int(high):02d}:59"
    return f"{first}, {'during' if every_minute else 'past'} {_list(hour, 'hour')}"


def _day(name: int) -> str:
    return DAYS[name]


def _month(name: int) -> str:
    return MONTHS[name]


def _date(day: str, month: str, weekday: str) -> str:
    bits = []
    if day != "*" and weekday != "*":
        bits.append(f"on {_list(day, 'day')} of the month or on {_list(weekday, 'day', _day)}")
    elif day != "*":
        bits.append(f"on {_list(day, 'day')} of the month")
    elif weekday != "*":
        days = _list(weekday, "day", _day)
        bits.append(days if "through" in days or "every" in days else f"on {days}")
    if month != "*":
        bits.append(f"in {_list(month, 'month', _month)}")
    return ", ".join(bits)


def describe(expression: str) -> str:
    """A human description of ``expression``, or the expression itself when it cannot say better."""
    text = expression.strip()
    if text.lower() in ALIASES:
        return ALIASES[text.lower()]
    try:
        fields = [str(f) for f in croniter(text).expressions]
        if len(fields) > 6:
            return expression
        minute, hour, day, month, weekday = fields[:5]
        second = fields[5] if len(fields) == 6 else "0"
        when = _time(second, minute, hour)
        date = _date(day, month, weekday)
    except (ValueError, KeyError, IndexError):
        return expression
    if not date:
        return "Every day " + when[0].lower() + when[1:] if when.startswith("At ") else when
    return f"{when}, {date}" if not date.startswith("on day") else f"{when} {date}"
