"""URLs a project may include outside the admin: the health view, for probes and monitors, and
the Prometheus metrics.

path("tempotask/", include("tempotask_django.urls"))   # -> /tempotask/health/, /tempotask/metrics/
"""

from django.urls import path

from tempotask_django.views.health import HealthView
from tempotask_django.views.metrics import MetricsView

app_name = "tempotask"

urlpatterns = [
    path("health/", HealthView.as_view(), name="health"),
    path("metrics/", MetricsView.as_view(), name="metrics"),
]
