"""The health view: the checks of ``manage.py tempotask health`` as JSON, for probes and monitors.

``GET health/?queue=default&queue=reports&max_waiting=1000&max_age=300&skip=beat`` answers 200 with
``{"status": "ok", ...}`` when every check passes, 503 with ``{"status": "fail", "summary": "FAIL:
...", ...}`` when one fails, and 400 for a query it does not understand. Every parameter is
optional and may repeat (or list values separated by commas); see ops/health.py for the checks.

It needs no login, so that a Kubernetes probe can call it: it tells queue names and whether the
checks pass, nothing about jobs. Mount it where only the cluster reaches it if that is too much.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.cache import never_cache

from tempotask_django.ops.health import HealthOptions, check_health

PARAMETERS = ("queue", "max_waiting", "max_age", "skip")


def _one(request: HttpRequest, name: str) -> str | None:
    values = request.GET.getlist(name)
    if len(values) > 1:
        raise ValueError(f"give {name} once")
    return values[0] if values else None


@method_decorator(never_cache, name="dispatch")
class HealthView(View):
    http_method_names = ["get", "head"]

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
        unknown = sorted(set(request.GET) - set(PARAMETERS))
        try:
            if unknown:
                raise ValueError(f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(PARAMETERS)}")
            options = HealthOptions.parse(
                request.GET.getlist("queue"),
                _one(request, "max_waiting"),
                _one(request, "max_age"),
                request.GET.getlist("skip"),
            )
        except ValueError as exc:
            return JsonResponse({"status": "error", "error": str(exc)}, status=400)
        health = check_health(options)
        return JsonResponse(health.as_dict(), status=200 if health.ok else 503)
