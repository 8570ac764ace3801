"""URLs a project may include outside the admin: the health view, for probes and monitors.

path("tempotask/", include("tempotask_django.urls"))   # -> /tempotask/health/
"""

from django.urls import path

from tempotask_django.views.health import HealthView

app_name = "tempotask"

urlpatterns = [path("health/", HealthView.as_view(), name="health")]
