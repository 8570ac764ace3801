"""Workers: every live worker process. A worker whose heartbeat expired is gone from the list."""

from __future__ import annotations

from typing import Any

from tempotask_django.conf import get_settings
from tempotask_django.views.base import DashboardPage
from tempotask_django.views.overview import worker_rows


class WorkersView(DashboardPage):
    template_name = "admin/tempotask_django/workers.html"
    title = "Workers"
    tab = "tempotask_workers"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return super().get_context_data(
            workers=worker_rows(self.store.list_workers(), self.store.server_time_ms()),
            heartbeat_ttl=max(3.0, get_settings().stalled_timeout),
            **kwargs,
        )
