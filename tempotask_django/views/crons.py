"""Cron schedules: every schedule Redis holds, with its next and last run, and the live beats.

Actions: run a schedule now (``run_cron``), pause and resume it (``pause_cron``). Like every
dashboard action they are POST only, checked against their permission and written to the admin log.
The page reads ``CronStore.list()``: a fixed number of round trips however many schedules there are.
"""

from __future__ import annotations

import datetime
from typing import Any

from django.contrib import messages
from django.contrib.admin.models import ADDITION, CHANGE
from django.http import HttpRequest, HttpResponse

from tempotask_django.cron import api as cron_api
from tempotask_django.exceptions import CronNotFound, TaskNotRegistered
from tempotask_django.job import ms_to_datetime
from tempotask_django.models import VIEW
from tempotask_django.storage.crons import BeatInfo, CronInfo, CronStore
from tempotask_django.templatetags.tempotask_admin import age
from tempotask_django.views.base import DashboardAction, DashboardPage, admin_url

# Seconds a schedule's next run may lie in the past before it counts as late (a live beat fires a
# tick within milliseconds and moves next run on, so a late schedule has no beat firing it).
LATE_AFTER = 120
# Late schedules named one by one on the overview; the rest are counted.
LATE_SHOWN = 5
# The admin log's object id of a schedule: "cron:<name>" (a queue name cannot contain ":").
LOG_PREFIX = "cron:"


def _seconds(later: datetime.datetime | None, earlier: datetime.datetime | None) -> float | None:
    return None if later is None or earlier is None else (later - earlier).total_seconds()


def is_late(cron: CronInfo, now: datetime.datetime) -> bool:
    """True when ``cron`` should have fired more than LATE_AFTER seconds ago and did not."""
    overdue = _seconds(now, cron.next_run)
    return not cron.paused and overdue is not None and overdue > LATE_AFTER


def cron_rows(crons: list[CronInfo], now_ms: int) -> list[dict[str, Any]]:
    """Schedules for display; ``now_ms`` is the Redis server's clock, which stamps every run."""
    now = ms_to_datetime(now_ms)
    rows = []
    for cron in crons:
        until_next = _seconds(cron.next_run, now)
        rows.append(
            {
                "cron": cron,
                "next_in": until_next if until_next is not None and until_next >= 0 else None,
                "next_overdue": -until_next if until_next is not None and until_next < 0 else None,
                "late": is_late(cron, now) if now else False,
                "last_age": _seconds(now, cron.last_enqueued_at),
            }
        )
    return rows


def beat_rows(beats: list[BeatInfo], now_ms: int) -> list[dict[str, Any]]:
    now = ms_to_datetime(now_ms)
    return [
        {"beat": beat, "heartbeat_age": _seconds(now, beat.heartbeat), "last_tick_age": _seconds(now, beat.last_tick)}
        for beat in beats
    ]


def cron_attention(crons: list[CronInfo], beats: list[BeatInfo], now_ms: int) -> list[dict[str, str]]:
    """Problems of the cron side: no beat alive while schedules exist, schedules that did not fire."""
    url = admin_url("tempotask_crons")
    if crons and not beats:
        text = (
            f"No cron beat is running: {len(crons)} cron schedule(s) will not fire. "
            "Start one with manage.py runcron (or runworkers --with-cron)."
        )
        return [{"level": "error", "text": text, "url": url}]
    now = ms_to_datetime(now_ms)
    late = [cron for cron in crons if now and is_late(cron, now)]
    found = []
    for cron in late[:LATE_SHOWN]:
        overdue = age(_seconds(now, cron.next_run))
        text = f"Cron schedule {cron.name} was due {overdue} ago and has not fired: no live beat fires it."
        found.append({"level": "warning", "text": text, "url": url})
    if len(late) > LATE_SHOWN:
        text = f"{len(late) - LATE_SHOWN} more cron schedule(s) are late."
        found.append({"level": "warning", "text": text, "url": url})
    return found


class CronsView(DashboardPage):
    template_name = "admin/tempotask_django/crons.html"
    title = "Cron schedules"
    tab = "tempotask_crons"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        crons_store = CronStore(self.store)
        crons, beats, now_ms = crons_store.list(), crons_store.beats(), self.store.server_time_ms()
        return super().get_context_data(
            crons=cron_rows(crons, now_ms),
            beats=beat_rows(beats, now_ms),
            schedule_count=len(crons),
            attention=cron_attention(crons, beats, now_ms),
            late_after=LATE_AFTER,
            **kwargs,
        )


class CronAction(DashboardAction):
    """A POST on one schedule; back to the schedules page (or the form's ``next``)."""

    def back(self) -> HttpResponse:
        return self.redirect_back(admin_url("tempotask_crons"))

    def not_found(self, name: str) -> HttpResponse:
        self.report(messages.ERROR, f"There is no cron schedule named {name} (a beat registers them when it starts).")
        return self.back()


class RunCronView(CronAction):
    """Enqueue a job of the schedule now; its own ticks are unaffected."""

    permissions = (VIEW, "run_cron")

    def post(self, request: HttpRequest, name: str) -> HttpResponse:
        try:
            job_id = cron_api.run_cron_now(name)
        except CronNotFound:
            return self.not_found(name)
        except (TaskNotRegistered, TypeError, ValueError) as exc:  # e.g. a task this process does not know
            self.report(messages.ERROR, f"Cron schedule {name} could not run: {exc}")
            return self.back()
        queue = CronStore(self.store).queue_of(name) or "?"
        self.record(ADDITION, f"{queue}/{job_id}", f"job {job_id} on {queue}", f"Ran cron schedule {name} now.")
        self.report(messages.SUCCESS, f"Cron schedule {name} ran now: job {job_id} was added to {queue}.")
        return self.back()


class PauseCronView(CronAction):
    """Its ticks are skipped (not queued up) until it is resumed."""

    permissions = (VIEW, "pause_cron")

    def post(self, request: HttpRequest, name: str) -> HttpResponse:
        try:
            cron_api.pause_cron(name)
        except CronNotFound:
            return self.not_found(name)
        self.record(CHANGE, f"{LOG_PREFIX}{name}", f"cron schedule {name}", "Paused.")
        self.report(messages.SUCCESS, f"Cron schedule {name} is paused: its ticks are skipped until it is resumed.")
        return self.back()


class ResumeCronView(CronAction):
    permissions = (VIEW, "pause_cron")

    def post(self, request: HttpRequest, name: str) -> HttpResponse:
        try:
            cron_api.resume_cron(name)
        except CronNotFound:
            return self.not_found(name)
        self.record(CHANGE, f"{LOG_PREFIX}{name}", f"cron schedule {name}", "Resumed.")
        self.report(messages.SUCCESS, f"Cron schedule {name} is resumed: it fires again from its next tick.")
        return self.back()
