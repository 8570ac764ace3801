"""Overview: one row per queue, totals, live workers and cron beats, the last hour's chart and what
needs attention.

The page renders completely on the server (and refreshes itself by a meta refresh without
JavaScript); with JavaScript a few lines poll ``overview.json`` and swap the page's fragments.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.template.loader import render_to_string
from django.views import View

from tempotask_django.job import JobStatus, ms_to_datetime
from tempotask_django.storage.crons import CronStore
from tempotask_django.storage.inspect import QueueStats
from tempotask_django.storage.presence import worker_figures
from tempotask_django.templatetags.tempotask_admin import age
from tempotask_django.views.base import DashboardMixin, DashboardPage
from tempotask_django.views.chart import build_chart
from tempotask_django.views.crons import beat_rows, cron_attention

# Seconds between refreshes of the overview (JavaScript polling, or the meta refresh without it).
REFRESH_SECONDS = 5
# A waiting job older than this many seconds is reported as possibly stuck.
STUCK_AFTER = 300
# Minutes the chart covers (the per-minute counters live two hours in Redis).
CHART_MINUTES = 60
# Fragments of the page that the JSON endpoint renders again: name -> template.
FRAGMENTS = {
    "attention": "admin/tempotask_django/includes/attention.html",
    "queues": "admin/tempotask_django/includes/queues_table.html",
    "chart": "admin/tempotask_django/includes/chart.html",
    "workers": "admin/tempotask_django/includes/workers_summary.html",
    "beats": "admin/tempotask_django/includes/beats_summary.html",
}
# Columns of the queues table that get a total.
COUNTED = (*(status.value for status in JobStatus), "consumers")


def served_queues(workers: list[dict[str, str]]) -> set[str]:
    """The queues the live workers serve (``workers``: their heartbeat info, as published)."""
    return {queue for worker in workers for queue in worker_figures(worker)["queues"]}


def _problem(level: str, queue: str, status: str, text: str) -> dict[str, str]:
    return {"level": level, "queue": queue, "status": status, "text": text}


def attention(stats: list[QueueStats], workers: list[dict[str, str]], chart: dict[str, Any]) -> list[dict[str, Any]]:
    """Plain-language problems an operator should look at, most serious first."""
    served = served_queues(workers)
    found = []
    for queue in stats:
        name = queue.queue
        if queue.waiting and queue.paused:
            found.append(_problem("warning", name, "waiting", f"{name} is paused with {queue.waiting} job(s) waiting."))
        elif queue.waiting and name not in served:
            text = f"{queue.waiting} job(s) wait in {name} and no live worker serves it."
            found.append(_problem("error", name, "waiting", text))
        elif queue.oldest_job_age is not None and queue.oldest_job_age > STUCK_AFTER:
            text = f"The oldest job in {name} has waited {age(queue.oldest_job_age)}."
            found.append(_problem("warning", name, "waiting", text))
        if queue.processing and name not in served:
            text = (
                f"{queue.processing} job(s) of {name} are marked running but no live worker serves the queue: "
                "a worker of the queue will take them over and run them again."
            )
            found.append(_problem("warning", name, "processing", text))
    if chart["failed"]:
        text = f"{chart['failed']} job(s) failed in the last {chart['minutes']} minutes."
        found.append(_problem("warning", "", "failed", text))
    found.sort(key=lambda item: item["level"] != "error")
    return found


def worker_rows(workers: list[dict[str, str]], now_ms: int) -> list[dict[str, Any]]:
    """Workers' info for display; ``now_ms`` is the Redis server's clock, which stamps heartbeats."""
    return [
        {
            **worker,
            **worker_figures(worker, now_ms),
            "started_at": ms_to_datetime(worker.get("started")),
            "heartbeat_at": ms_to_datetime(int(worker.get("heartbeat") or 0) or None),
        }
        for worker in workers
    ]


class OverviewMixin(DashboardMixin):
    title = "Tempotask"
    tab = "tempotask_overview"

    def overview_context(self) -> dict[str, Any]:
        queues = self.all_queues()
        store = self.store
        stats = store.inspect.queue_stats_many(queues)
        now_ms = store.server_time_ms()
        live = store.inspect.list_workers()  # heartbeat info, as published
        chart = build_chart(store.inspect.minute_totals(queues, CHART_MINUTES))
        cron_store = CronStore(store)
        crons, beats = cron_store.list(with_job_status=False), cron_store.beats()
        totals = {name: sum(getattr(queue, name) for queue in stats) for name in COUNTED}
        problems = attention(stats, live, chart) + cron_attention(crons, beats, now_ms)
        problems.sort(key=lambda item: item["level"] != "error")
        return {
            "queues": stats,
            "totals": totals,
            "workers": worker_rows(live, now_ms),
            "served": served_queues(live),
            "chart": chart,
            "beats": beat_rows(beats, now_ms),
            "schedule_count": len(crons),
            "attention": problems,
            "refresh_seconds": REFRESH_SECONDS,
        }


class OverviewView(OverviewMixin, DashboardPage):
    template_name = "admin/tempotask_django/overview.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {**super().get_context_data(**kwargs), **self.overview_context()}


class OverviewDataView(OverviewMixin, View):
    """The overview as JSON (numbers for scripts and monitoring, HTML fragments for the page)."""

    http_method_names = ["get", "head"]

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
        overview = self.overview_context()
        context = self.dashboard_context(**overview)
        html = {name: render_to_string(template, context, request) for name, template in FRAGMENTS.items()}
        return JsonResponse(
            {
                "queues": [queue.as_dict() for queue in overview["queues"]],
                "totals": overview["totals"],
                "workers": len(overview["workers"]),
                "beats": len(overview["beats"]),
                "crons": overview["schedule_count"],
                "chart": {key: overview["chart"][key] for key in ("minutes", "completed", "failed", "retried")},
                "attention": [item["text"] for item in overview["attention"]],
                "html": html,
            }
        )
