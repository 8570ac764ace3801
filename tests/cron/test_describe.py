"""Cron expressions in words. Pure."""

import pytest

from tempotask_django.cron import describe


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("* * * * *", "Every minute"),
        ("*/5 * * * *", "Every 5 minutes"),
        ("0 * * * *", "Every hour"),
        ("15 * * * *", "Every hour at minute 15"),
        ("0 */2 * * *", "Every 2 hours"),
        ("0 3 * * *", "Every day at 03:00"),
        ("0 9,18 * * *", "Every day at 09:00 and 18:00"),
        ("30 2 * * 1-5", "At 02:30, Monday through Friday"),
        ("0 12 * * sun", "At 12:00, on Sunday"),
        ("0 9 1 * *", "At 09:00 on day 1 of the month"),
        ("0 0 1,15 * *", "At 00:00 on days 1 and 15 of the month"),
        ("0 0 1 1 *", "At 00:00 on day 1 of the month, in January"),
        ("*/10 9-17 * * 1-5", "Every 10 minutes, between 09:00 and 17:59, Monday through Friday"),
        ("*/15 2 * * *", "Every 15 minutes, during hour 2"),
        ("* * * * * *", "Every second"),
        ("* * * * * */10", "Every 10 seconds"),
        ("0 0 * * * 30", "Every day at 00:00:30"),
        ("@hourly", "Every hour"),
        ("@daily", "Every day at 00:00"),
        ("@weekly", "Every Sunday at 00:00"),
        ("0 0 L * *", "0 0 L * *"),  # syntax it does not spell out: the expression itself
        ("0 0 * * 5#2", "0 0 * * 5#2"),
        ("not cron", "not cron"),
    ],
)
def test_describe(expression, words):
    assert describe(expression) == words
