"""Cron expressions: validation, fire times and the daylight-saving policy. Pure functions, no Redis.

A tick is an instant, named by its UTC epoch second. Ticks are found on the wall clock of the
schedule's timezone (croniter does the calendar arithmetic on naive wall times, where it has no
daylight-saving bugs) and then placed on the UTC time line by this module, with the rule Unix cron
(cron(8)) applies when the clock changes:

- **Clock moves forward** (a wall-clock range is skipped, e.g. 02:00-02:59 in Europe/Berlin on the
  spring change): every tick whose wall time falls in the skipped range fires once, at the first
  instant after it (03:00 CEST). Ticks that land on one instant are one tick, so ``*/15 * * * *``
  fires once at 03:00, and ``30 2 * * *`` fires at 03:00 that day.
- **Clock moves back** (a wall-clock range happens twice, e.g. 02:00-02:59 on the autumn change):
  a *fixed-time* schedule (its minute and hour fields are values, e.g. ``30 2 * * *``,
  ``0 2,14 * * *``) fires once, in the first pass. An *interval* schedule (``*`` or ``*/n`` in the
  minute or hour field, e.g. ``*/15 * * * *``, ``@hourly``) keeps its rhythm in real time and fires
  in both passes, so an hourly job still runs every hour.

Offsets are assumed to change at most once a day in a zone (true of every zone since 1970); the
search bounds below rely on it.
"""

from __future__ import annotations

import datetime
import functools
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass, field

from croniter import CroniterBadCronError, CroniterBadDateError, croniter

from tempotask_django.exceptions import ConfigurationError

DAY = 86_400
# Naive wall times are handled as "wall seconds": seconds since 1970-01-01 00:00 on the wall clock.
_WALL_EPOCH = datetime.datetime(1970, 1, 1)
# Wall ticks examined by one search at most; only a broken expression or zone gets near it.
_MAX_STEPS = 100_000


def validate_cron(expression: str, timezone: str | None = None, *, where: str = "cron") -> None:
    """Raise ConfigurationError when ``expression`` or ``timezone`` is not usable."""
    CronExpression.parse(expression, timezone or "UTC", where=where)


def _zone(name: str, where: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise ConfigurationError(f"{where}: unknown timezone {name!r}") from exc


@dataclass(frozen=True)
class CronExpression:
    """A cron expression in a timezone; computes its ticks as UTC epoch seconds.

    Five fields (minute hour day month weekday), six (croniter's order: a seconds field last),
    or an alias (``@hourly``, ``@daily``, ``@midnight``, ``@weekly``, ``@monthly``, ``@yearly``).

    Example::

        nightly = CronExpression.parse("30 2 * * *", "Europe/Berlin")
        nightly.next_after(1_711_843_200)   # the next tick after that instant, as an epoch second
    """

    expression: str
    timezone: str
    fields: tuple[str, ...] = field(compare=False, repr=False)
    zone: zoneinfo.ZoneInfo = field(compare=False, repr=False)

    @classmethod
    def parse(cls, expression: str, timezone: str = "UTC", *, where: str = "cron") -> CronExpression:
        """Validate and build; ConfigurationError (naming ``where``) when unusable or never firing."""
        zone = _zone(timezone, where)
        problem = (
            f"{where}: {expression!r} is not a valid cron expression (five fields 'minute hour day month "
            "weekday', six with a seconds field last, or @hourly/@daily/@weekly/@monthly/@yearly)"
        )
        if not isinstance(expression, str) or not croniter.is_valid(expression):
            raise ConfigurationError(problem)
        try:
            fields = tuple(str(f) for f in croniter(expression).expressions)
            croniter(expression, _WALL_EPOCH).get_next(datetime.datetime)
        except CroniterBadDateError:
            raise ConfigurationError(f"{where}: {expression!r} never fires (no such date)") from None
        except (CroniterBadCronError, ValueError, KeyError) as exc:
            raise ConfigurationError(f"{problem}: {exc}") from None
        return cls(expression, timezone, fields, zone)

    @property
    def is_fixed_time(self) -> bool:
        """True when minute and hour are values (not ``*``/``*/n``): fires once in a repeated hour."""
        return not (self.fields[0].startswith("*") or self.fields[1].startswith("*"))

    # -- the two searches -------------------------------------------------------------------
    def next_after(self, instant: int) -> int | None:
        """The first tick strictly after ``instant`` (UTC epoch seconds); None if it never fires again."""
        start = instant + self._offset(instant)
        drop = self._offset(instant) - min(self._offset(instant), self._offset(instant + DAY))
        if drop:  # the clock goes back soon: walls before ours may still come, in the second pass
            change = self._transition(instant, instant + drop)
            if change is not None:
                start = min(start, change + self._offset(change))
        best: int | None = None
        for wall in self._walls(start, forward=True):
            if best is not None and wall - self._max_offset_near(best) > best:
                return best
            for candidate in self._instants(wall):
                if candidate > instant and (best is None or candidate < best):
                    best = candidate
        return best

    def last_at_or_before(self, instant: int) -> int | None:
        """The most recent tick at or before ``instant`` (UTC epoch seconds); None if it never fired."""
        end = instant + self._offset(instant)
        rise = max(self._offset(instant), self._offset(instant - DAY)) - self._offset(instant)
        if rise:  # the clock went back lately: walls after ours were already passed, in the first pass
            change = self._transition(instant - rise, instant)
            if change is not None:
                end = max(end, change + self._offset(change - 1) - 1)
        best: int | None = None
        for wall in self._walls(end, forward=False):
            if best is not None and wall - self._min_offset_near(best) < best:
                return best
            for candidate in self._instants(wall):
                if candidate <= instant and (best is None or candidate > best):
                    best = candidate
        return best

    # -- wall clock <-> UTC ------------------------------------------------------------------
    def _offset(self, instant: int) -> int:
        """UTC offset of the zone at ``instant``, in seconds."""
        return _offset(self.zone, instant)

    def _max_offset_near(self, instant: int) -> int:
        return max(self._offset(instant - 2 * DAY), self._offset(instant - DAY), self._offset(instant))

    def _min_offset_near(self, instant: int) -> int:
        return min(self._offset(instant), self._offset(instant + DAY), self._offset(instant + 2 * DAY))

    def _transition(self, low: int, high: int) -> int | None:
        """First instant in (low, high] whose offset differs from ``low``'s (None if there is none)."""
        before = self._offset(low)
        if self._offset(high) == before:
            return None
        while high - low > 1:
            middle = (low + high) // 2
            if self._offset(middle) == before:
                low = middle
            else:
                high = middle
        return high

    def _instants(self, wall: int) -> list[int]:
        """The UTC instants a wall time stands for under the DST policy (see the module docstring)."""
        naive = _WALL_EPOCH + datetime.timedelta(seconds=wall)
        first = int(naive.replace(tzinfo=self.zone, fold=0).timestamp())
        second = int(naive.replace(tzinfo=self.zone, fold=1).timestamp())
        if first == second:
            return [first]
        if first < second:  # repeated: first and second pass
            return [first] if self.is_fixed_time else [first, second]
        # Skipped (fold=1 maps it before the change, fold=0 after): fire at the change.
        change = self._transition(second, first)
        return [change if change is not None else first]

    def _walls(self, start: int, *, forward: bool) -> Iterator[int]:
        """Wall seconds of the expression from ``start`` (inclusive), forward or backward.

        A skipped range yields one wall (all of it maps to one instant); the rest of it is jumped over.
        """
        cursor = start - 1 if forward else start + 1
        it = croniter(self.expression, _WALL_EPOCH + datetime.timedelta(seconds=cursor))
        for _ in range(_MAX_STEPS):
            try:
                moment = it.get_next(datetime.datetime) if forward else it.get_prev(datetime.datetime)
            except CroniterBadDateError:  # no more ticks that way (e.g. a year field in the past)
                return
            wall = int((moment - _WALL_EPOCH).total_seconds())
            yield wall
            skipped = self._skipped_range(wall)
            if skipped is not None:
                cursor = skipped[1] - 1 if forward else skipped[0]
                it = croniter(self.expression, _WALL_EPOCH + datetime.timedelta(seconds=cursor))

    def _skipped_range(self, wall: int) -> tuple[int, int] | None:
        """(first, end) wall seconds of the skipped range holding ``wall``, or None."""
        naive = _WALL_EPOCH + datetime.timedelta(seconds=wall)
        first = int(naive.replace(tzinfo=self.zone, fold=0).timestamp())
        second = int(naive.replace(tzinfo=self.zone, fold=1).timestamp())
        if first <= second:
            return None
        change = self._transition(second, first)
        if change is None:
            return None
        return change + self._offset(change - 1), change + self._offset(change)


@functools.lru_cache(maxsize=4096)
def _offset(zone: zoneinfo.ZoneInfo, instant: int) -> int:
    moment = datetime.datetime.fromtimestamp(instant, datetime.UTC).astimezone(zone)
    offset = moment.utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0
