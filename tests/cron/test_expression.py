"""Cron arithmetic: fire times, timezones and the daylight-saving policy. Pure, no Redis."""

from __future__ import annotations

import datetime
import itertools
import zoneinfo

import pytest
from croniter import croniter
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tempotask_django.cron import CronExpression, validate_cron
from tempotask_django.exceptions import ConfigurationError
from tests.cron.support import epoch, local, next_ticks


def ticks(expression: str, tz: str, start: str, count: int) -> list[str]:
    cron = CronExpression.parse(expression, tz)
    return [local(tick, tz) for tick in next_ticks(cron, epoch(start, tz), count)]


# Each row: expression, timezone, start (local, exclusive), the ticks that follow (local, with offset).
DST_TABLE = [
    # Spring forward in Berlin: 02:00-02:59 does not exist on 2024-03-31.
    (
        "30 2 * * *",
        "Europe/Berlin",
        "2024-03-30T12:00",
        ["2024-03-31T03:00:00+02:00", "2024-04-01T02:30:00+02:00"],
    ),  # skipped time fires once, at 03:00
    (
        "*/30 * * * *",
        "Europe/Berlin",
        "2024-03-31T01:00",
        ["2024-03-31T01:30:00+01:00", "2024-03-31T03:00:00+02:00", "2024-03-31T03:30:00+02:00"],
    ),
    (
        "30 * * * *",
        "Europe/Berlin",
        "2024-03-31T01:00",
        ["2024-03-31T01:30:00+01:00", "2024-03-31T03:00:00+02:00", "2024-03-31T03:30:00+02:00"],
    ),
    (
        "*/15 2 * * *",
        "Europe/Berlin",
        "2024-03-31T00:00",
        ["2024-03-31T03:00:00+02:00", "2024-04-01T02:00:00+02:00"],
    ),  # four skipped ticks: one fire
    # Fall back in Berlin: 02:00-02:59 happens twice on 2024-10-27.
    (
        "30 2 * * *",
        "Europe/Berlin",
        "2024-10-26T12:00",
        ["2024-10-27T02:30:00+02:00", "2024-10-28T02:30:00+01:00"],
    ),  # fixed time: once. Why expression.py places ticks itself: croniter on aware datetimes gets
    # this day wrong, differently by version (7.0: 02:30 twice on the 27th; 3.0: 03:30 on the 28th).
    (
        "0 2,3 * * *",
        "Europe/Berlin",
        "2024-10-27T00:00",
        ["2024-10-27T02:00:00+02:00", "2024-10-27T03:00:00+01:00", "2024-10-28T02:00:00+01:00"],
    ),
    (
        "0 * * * *",
        "Europe/Berlin",
        "2024-10-27T00:30",
        [
            "2024-10-27T01:00:00+02:00",
            "2024-10-27T02:00:00+02:00",
            "2024-10-27T02:00:00+01:00",
            "2024-10-27T03:00:00+01:00",
        ],
    ),  # interval: every real hour
    (
        "*/30 * * * *",
        "Europe/Berlin",
        "2024-10-27T01:45",
        [
            "2024-10-27T02:00:00+02:00",
            "2024-10-27T02:30:00+02:00",
            "2024-10-27T02:00:00+01:00",
            "2024-10-27T02:30:00+01:00",
            "2024-10-27T03:00:00+01:00",
        ],
    ),
    (
        "* * * * * *",
        "Europe/Berlin",
        "2024-10-27T02:59:58+02:00",
        ["2024-10-27T02:59:59+02:00", "2024-10-27T02:00:00+01:00", "2024-10-27T02:00:01+01:00"],
    ),
    # New York, both changes.
    ("30 2 * * *", "America/New_York", "2024-03-09T12:00", ["2024-03-10T03:00:00-04:00", "2024-03-11T02:30:00-04:00"]),
    ("30 1 * * *", "America/New_York", "2024-11-02T12:00", ["2024-11-03T01:30:00-04:00", "2024-11-04T01:30:00-05:00"]),
    # A 30-minute change (Lord Howe Island, 02:00 -> 02:30): the skipped 02:28 fires at 02:30.
    (
        "*/7 * * * *",
        "Australia/Lord_Howe",
        "2024-10-06T01:50",
        ["2024-10-06T01:56:00+10:30", "2024-10-06T02:30:00+11:00", "2024-10-06T02:35:00+11:00"],
    ),
    # A change at midnight (Sao Paulo, 2018-11-04 00:00 -> 01:00): the daily midnight job runs at 01:00.
    ("0 0 * * *", "America/Sao_Paulo", "2018-11-03T12:00", ["2018-11-04T01:00:00-02:00", "2018-11-05T00:00:00-02:00"]),
    # A whole day skipped (Samoa, 2011-12-30): its noon tick fires once, when the day would have ended.
    ("0 12 * * *", "Pacific/Apia", "2011-12-29T13:00", ["2011-12-31T00:00:00+14:00", "2011-12-31T12:00:00+14:00"]),
    # Without daylight saving nothing special happens.
    ("30 2 * * *", "UTC", "2024-03-30T12:00", ["2024-03-31T02:30:00+00:00", "2024-04-01T02:30:00+00:00"]),
]


@pytest.mark.parametrize(("expression", "tz", "start", "expected"), DST_TABLE)
def test_dst_table(expression, tz, start, expected):
    assert ticks(expression, tz, start, len(expected)) == expected


@pytest.mark.parametrize(("expression", "tz", "start", "expected"), DST_TABLE)
def test_last_at_or_before_agrees_with_next_after(expression, tz, start, expected):
    cron = CronExpression.parse(expression, tz)
    found = next_ticks(cron, epoch(start, tz), len(expected))
    assert [local(tick, tz) for tick in found] == expected  # every row has two ticks or more: pairs to check
    for previous, tick in itertools.pairwise(found):
        assert cron.last_at_or_before(tick) == tick
        assert cron.last_at_or_before(tick - 1) == previous
        assert cron.last_at_or_before((previous + tick) // 2) == previous


def test_timezone_moves_the_tick():
    paris = CronExpression.parse("0 9 * * *", "Europe/Paris")
    tokyo = CronExpression.parse("0 9 * * *", "Asia/Tokyo")
    start = epoch("2024-06-01T00:00", "UTC")
    assert local(paris.next_after(start), "UTC") == "2024-06-01T07:00:00+00:00"
    assert local(tokyo.next_after(start), "UTC") == "2024-06-02T00:00:00+00:00"


@pytest.mark.parametrize(
    ("expression", "start", "expected"),
    [
        ("@hourly", "2024-01-01T10:20", ["2024-01-01T11:00:00+00:00"]),
        ("@daily", "2024-01-01T10:20", ["2024-01-02T00:00:00+00:00"]),
        ("@weekly", "2024-01-01T10:20", ["2024-01-07T00:00:00+00:00"]),  # Sunday
        ("@monthly", "2024-01-01T10:20", ["2024-02-01T00:00:00+00:00"]),
        ("@yearly", "2024-01-01T10:20", ["2025-01-01T00:00:00+00:00"]),
        ("* * * * * */20", "2024-01-01T10:20", ["2024-01-01T10:20:20+00:00", "2024-01-01T10:20:40+00:00"]),
        ("0 0 29 2 *", "2024-03-01T00:00", ["2028-02-29T00:00:00+00:00"]),
    ],
)
def test_aliases_seconds_and_rare_dates(expression, start, expected):
    assert ticks(expression, "UTC", start, len(expected)) == expected


@pytest.mark.parametrize(
    ("expression", "fixed"),
    [
        ("30 2 * * *", True),
        ("0 2,14 * * 1-5", True),
        ("@daily", True),
        ("*/15 * * * *", False),
        ("0 * * * *", False),
        ("@hourly", False),
        ("*/10 2 * * *", False),
        ("0 */2 * * *", False),
    ],
)
def test_fixed_time_or_interval(expression, fixed):
    assert CronExpression.parse(expression).is_fixed_time is fixed


@pytest.mark.parametrize(
    ("expression", "timezone", "message"),
    [
        ("every minute", "UTC", "not a valid cron expression"),
        ("61 * * * *", "UTC", "not a valid cron expression"),
        ("1 2 3", "UTC", "not a valid cron expression"),
        ("0 0 30 2 *", "UTC", "never fires"),
        ("* * * * *", "Mars/Olympus", "unknown timezone"),
        (None, "UTC", "not a valid cron expression"),
    ],
)
def test_invalid_expressions_are_configuration_errors(expression, timezone, message):
    with pytest.raises(ConfigurationError, match=message):
        validate_cron(expression, timezone, where="here")


def test_an_expression_that_no_longer_fires_has_no_next_tick():
    cron = CronExpression.parse("0 0 1 1 * 0 2020")  # seconds, then a year field
    assert cron.next_after(epoch("2024-01-01T00:00", "UTC")) is None
    assert local(cron.last_at_or_before(epoch("2024-01-01T00:00", "UTC")), "UTC") == "2020-01-01T00:00:00+00:00"


# -- the policy, checked against a brute-force reading of its definition ----------------------------
def reference_ticks(expression: str, tz: str, start: int, end: int) -> list[int]:
    """Every minute in [start, end) by definition: a wall time matching the expression fires (a fixed
    time only in its first pass); a matching wall time inside a skipped range fires at the change."""
    zone = zoneinfo.ZoneInfo(tz)
    fixed = CronExpression.parse(expression, tz).is_fixed_time
    found = set()
    previous_offset = int(datetime.datetime.fromtimestamp(start - 60, zone).utcoffset().total_seconds())
    for instant in range(start, end, 60):
        moment = datetime.datetime.fromtimestamp(instant, zone)
        wall = moment.replace(tzinfo=None)
        offset = int(moment.utcoffset().total_seconds())
        if offset > previous_offset:  # the clock jumped forward
            skipped_from = wall - datetime.timedelta(seconds=offset - previous_offset)
            for minute in range((offset - previous_offset) // 60):
                if croniter.match(expression, skipped_from + datetime.timedelta(minutes=minute)):
                    found.add(instant)
        previous_offset = offset
        first_pass = int(wall.replace(tzinfo=zone, fold=0).timestamp()) == instant
        if croniter.match(expression, wall) and (first_pass or not fixed):
            found.add(instant)
    return sorted(found)


TRANSITIONS = [
    ("Europe/Berlin", "2024-03-31T01:00Z"),
    ("Europe/Berlin", "2024-10-27T01:00Z"),
    ("America/New_York", "2024-03-10T07:00Z"),
    ("America/New_York", "2024-11-03T06:00Z"),
    ("Australia/Lord_Howe", "2024-10-05T15:30Z"),
    ("Australia/Lord_Howe", "2024-04-06T15:00Z"),
    ("America/Sao_Paulo", "2018-11-04T03:00Z"),
    ("Pacific/Chatham", "2024-04-06T14:00Z"),
]
EXPRESSIONS = [
    "30 2 * * *",
    "*/15 * * * *",
    "0 * * * *",
    "30 * * * *",
    "*/7 * * * *",
    "0 0 * * *",
    "45 1,2,3 * * *",
    "*/20 2 * * *",
    "0 2 * * 0",
    "15 */2 * * *",
]


@settings(max_examples=40, deadline=None)
@example(TRANSITIONS[0], "30 2 * * *", 12)  # a window starting exactly at the change
@given(st.sampled_from(TRANSITIONS), st.sampled_from(EXPRESSIONS), st.integers(-36, 30))
def test_fast_search_matches_the_definition_around_transitions(transition, expression, shift_hours):
    tz, when = transition
    center = int(datetime.datetime.fromisoformat(when).timestamp()) + shift_hours * 3600
    start, end = center - 12 * 3600, center + 12 * 3600
    cron = CronExpression.parse(expression, tz)
    expected = reference_ticks(expression, tz, start, end)
    found = []
    tick = cron.next_after(start - 1)
    while tick is not None and tick < end:
        found.append(tick)
        tick = cron.next_after(tick)
    assert [local(t, tz) for t in found] == [local(t, tz) for t in expected]
    for tick in expected:
        assert cron.last_at_or_before(tick + 59) == tick
