"""No tables: tempotask keeps its state in Redis.

``Dashboard`` is an unmanaged model without a table. It exists so the admin lists a "Tempotask"
section and so the dashboard's permissions can be given through Django's groups and users.
"""

from django.db import models

# Codename -> description. Every dashboard page needs VIEW; each action needs its own permission.
VIEW = "view_dashboard"
PERMISSIONS = {
    VIEW: "Can view the Tempotask dashboard",
    "retry_job": "Can retry failed jobs",
    "delete_job": "Can delete jobs",
    "cancel_job": "Can cancel jobs",
    "enqueue_job": "Can enqueue jobs from the admin",
    "pause_queue": "Can pause and resume queues",
    "purge_queue": "Can purge the history of a queue",
    "run_cron": "Can run cron schedules now",
    "pause_cron": "Can pause and resume cron schedules",
    "add_cron": "Can create runtime cron schedules",
    "change_cron": "Can change runtime cron schedules",
    "delete_cron": "Can delete runtime cron schedules",
}


class Dashboard(models.Model):
    """The admin's Tempotask pages (no table)."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = list(PERMISSIONS.items())
        verbose_name = "dashboard"
        verbose_name_plural = "dashboard"

    def __str__(self) -> str:
        return "Tempotask dashboard"
