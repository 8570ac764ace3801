"""Workers and cron beats: every live process. One whose heartbeat expired is gone from the lists."""

from __future__ import annotations

from typing import Any

from tempotask_django.conf import get_settings
from tempotask_django.storage.crons import CronStore
from tempotask_django.views.base import DashboardPage
from tempotask_django.views.crons import beat_rows
from tempotask_django.views.overview import worker_rows


class WorkersView(DashboardPage):
    template_name = "admin/tempotask_django/workers.html"
    title = "Workers"
    tab = "tempotask_workers"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        settings = get_settings()
        now_ms = self.store.server_time_ms()
        return super().get_context_data(
            workers=worker_rows(self.store.inspect.list_workers(), now_ms),
            heartbeat_ttl=max(3.0, settings.stalled_timeout),
            beats=beat_rows(CronStore(self.store).beats(), now_ms),
            beat_heartbeat=settings.cron_beat_heartbeat,
            beat_ttl=settings.cron_beat_ttl,
            **kwargs,
        )
