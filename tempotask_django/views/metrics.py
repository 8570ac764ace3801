"""The Prometheus endpoint: ``GET metrics/`` (``tempotask_django.urls``) in the text exposition format.

Who may scrape: a request carrying ``Authorization: Bearer <TEMPOTASK["METRICS_TOKEN"]>`` (for
Prometheus), or a staff user allowed to view the dashboard (for a look from a browser). Anyone else
gets 403. It needs the ``prometheus`` extra (``pip install tempotask-django[prometheus]``); without
it the view answers 501 saying so. A scrape that cannot reach Redis answers 503.
"""

from __future__ import annotations

import hmac
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.cache import never_cache

from tempotask_django.conf import get_settings
from tempotask_django.models import VIEW
from tempotask_django.storage.outage import REDIS_ERRORS
from tempotask_django.views.base import has_permission

try:
    from prometheus_client import generate_latest

    from tempotask_django.ops import metrics
except ImportError:  # the prometheus extra is not installed
    metrics = None  # type: ignore[assignment]

# What generate_latest() writes, whatever the library's newest default type is: every Prometheus reads it.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MISSING_EXTRA = "Metrics need prometheus_client: pip install 'tempotask-django[prometheus]'\n"


def may_scrape(request: HttpRequest) -> bool:
    """A request with the configured bearer token, or a staff user who may view the dashboard."""
    token = get_settings().metrics_token
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer "):
        return hmac.compare_digest(header.removeprefix("Bearer ").encode(), token.encode())
    user = getattr(request, "user", None)
    return user is not None and has_permission(user, VIEW)


@method_decorator(never_cache, name="dispatch")
class MetricsView(View):
    http_method_names = ["get", "head"]

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not may_scrape(request):
            return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
        if metrics is None:
            return HttpResponse(MISSING_EXTRA, status=501, content_type="text/plain")
        try:
            body = generate_latest(metrics.registry())
        except REDIS_ERRORS as exc:
            return HttpResponse(
                f"Redis is not reachable: {type(exc).__name__}\n", status=503, content_type="text/plain"
            )
        return HttpResponse(body, content_type=CONTENT_TYPE)
