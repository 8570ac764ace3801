"""The overview's pure parts: problem detection (queues and crons), the chart's scale, readable ages, the timeline."""

from __future__ import annotations

import datetime

from tempotask_django.job import Job, JobStatus, ms_to_datetime
from tempotask_django.storage.crons import BeatInfo, CronInfo
from tempotask_django.storage.inspect import QueueStats
from tempotask_django.templatetags.tempotask_admin import age
from tempotask_django.views.chart import build_chart, nice_ceiling
from tempotask_django.views.crons import LATE_AFTER, LATE_SHOWN, cron_attention
from tempotask_django.views.overview import STUCK_AFTER, attention
from tempotask_django.views.timeline import timeline

QUIET_CHART = {"failed": 0, "minutes": 60}


def stats(queue: str, **counts) -> QueueStats:
    base = {
        "waiting": 0,
        "processing": 0,
        "delayed": 0,
        "completed": 0,
        "failed": 0,
        "consumers": 0,
        "paused": False,
        "next_job_age": None,
        "oldest_job_age": None,
    }
    return QueueStats(queue=queue, **{**base, **counts})


def test_attention_names_unserved_paused_and_stuck_queues():
    workers = [{"queues": "served,stuck"}]
    found = attention(
        [
            stats("served", waiting=3, oldest_job_age=10),
            stats("nobody", waiting=2),
            stats("paused", waiting=1, paused=True),
            stats("stuck", waiting=1, oldest_job_age=STUCK_AFTER + 120),
            stats("orphans", processing=4),
        ],
        workers,
        {"failed": 5, "minutes": 60},
    )
    texts = [item["text"] for item in found]
    assert texts[0] == "2 job(s) wait in nobody and no live worker serves it."  # errors first
    assert "paused is paused with 1 job(s) waiting." in texts
    assert "The oldest job in stuck has waited 7 min." in texts
    assert any(text.startswith("4 job(s) of orphans are marked running") for text in texts)
    assert "5 job(s) failed in the last 60 minutes." in texts
    assert not any(item["queue"] == "served" for item in found)


def test_nothing_to_report_when_all_is_well():
    assert attention([stats("q", waiting=1, oldest_job_age=1)], [{"queues": "q"}], QUIET_CHART) == []


def test_chart_scale_and_bars():
    assert [nice_ceiling(v) for v in (0, 1, 3, 7, 10, 11, 230)] == [1, 1, 5, 10, 10, 20, 500]
    series = [{"minute": 60 * m, "completed": m, "failed": 1 if m == 2 else 0} for m in range(4)]
    chart = build_chart(series)
    assert chart["top"] == 5 and chart["completed"] == 6 and chart["failed"] == 1 and len(chart["bars"]) == 4
    tallest = chart["bars"][3]
    assert tallest["completed_h"] == 72.0 and tallest["completed_y"] == 48.0
    assert chart["bars"][2]["failed_y"] == chart["bars"][2]["completed_y"] - chart["bars"][2]["failed_h"]
    assert build_chart([{"minute": 0, "completed": 0, "failed": 0}])["top"] == 1


def test_age_is_readable():
    values = [None, 0, 59, 60, 3599, 3600, 3660, 86_400, 90_000]
    expected = ["\u2013", "0 s", "59 s", "1 min", "59 min", "1 h", "1 h 1 min", "1 d", "1 d 1 h"]
    assert [age(v) for v in values] == expected


def test_timeline_of_a_retried_then_completed_job():
    t0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    ms = int(t0.timestamp() * 1000)
    job = Job(
        id="j",
        name="n",
        queue="q",
        status=JobStatus.COMPLETED,
        attempt=2,
        worker="w2",
        enqueued_at=t0,
        started_at=t0 + datetime.timedelta(seconds=5),
        finished_at=t0 + datetime.timedelta(seconds=6),
        errors=[{"attempt": 1, "type": "KeyError", "t": ms + 2000, "worker": "w1"}],
    )
    assert [event["text"] for event in timeline(job)] == [
        "Enqueued",
        "Attempt 1 failed on w1: KeyError",
        "Attempt 2 started on w2",
        "Completed",
    ]


def test_malformed_timestamps_do_not_break_the_page():
    assert ms_to_datetime("soon") is None and ms_to_datetime(None) is None
    job = Job(id="j", name="n", queue="q", status=JobStatus.WAITING, errors=[{"t": "garbage"}])
    assert [event["kind"] for event in timeline(job)] == ["enqueued", "failed", "waiting"]


def test_a_retry_in_the_millisecond_its_attempt_failed_keeps_the_logical_order():
    t0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    ms = int(t0.timestamp() * 1000)
    same = t0 + datetime.timedelta(seconds=1)
    job = Job(
        id="j",
        name="n",
        queue="q",
        status=JobStatus.FAILED,
        attempt=2,
        enqueued_at=t0,
        started_at=same,
        finished_at=same,
        errors=[{"attempt": 1, "type": "A", "t": ms + 1000}, {"attempt": 2, "type": "B", "t": ms + 1000}],
    )
    assert [event["text"] for event in timeline(job)] == [
        "Enqueued",
        "Attempt 1 failed: A",
        "Attempt 2 started",
        "Attempt 2 failed: B",
        "Failed for good (no attempts left)",
    ]


NOW_MS = 1_900_000_000_000


def cron(name: str, next_in_s: float | None, paused: bool = False) -> CronInfo:
    next_run = None if next_in_s is None else ms_to_datetime(NOW_MS + int(next_in_s * 1000))
    return CronInfo(
        name=name,
        task="t",
        expression="* * * * *",
        description="",
        timezone="UTC",
        queue="q",
        data=None,
        attempts=None,
        priority=None,
        next_run=next_run,
        last_run=None,
        last_enqueued_at=None,
        last_job_id=None,
        last_job_status=None,
        paused=paused,
        runs=0,
    )


BEAT = BeatInfo(id="h:1:x", host="h", pid=1, kind="runcron", schedules=1, started=None, last_tick=None, heartbeat=None)


def test_cron_attention_without_a_beat_is_one_error(db):
    [problem] = cron_attention([cron("a", -3600), cron("b", 60)], [], NOW_MS)
    assert problem["level"] == "error" and problem["text"].startswith("No cron beat is running: 2 cron schedule(s)")
    assert cron_attention([], [], NOW_MS) == []


def test_cron_attention_names_late_schedules_but_not_paused_or_barely_late_ones(db):
    crons = [cron(f"late{n}", -LATE_AFTER - 60 * (n + 1)) for n in range(7)]
    crons += [cron("paused", -86_400, paused=True), cron("just-due", -LATE_AFTER + 5), cron("ended", None)]
    texts = [problem["text"] for problem in cron_attention(crons, [BEAT], NOW_MS)]
    assert texts[0] == "Cron schedule late0 was due 3 min ago and has not fired: no live beat fires it."
    assert len(texts) == LATE_SHOWN + 1 and texts[-1] == "2 more cron schedule(s) are late."
    assert not any("paused" in text or "just-due" in text or "ended" in text for text in texts)
