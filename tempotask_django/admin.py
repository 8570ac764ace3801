"""The "Tempotask" section of the Django admin: the dashboard's pages and actions, without tables.

Every view is wrapped in ``admin_site.admin_view`` (staff only, CSRF-protected, never cached) and
checks its own permission (see models.PERMISSIONS).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import URLPattern, path, re_path

from tempotask_django.job import JobStatus
from tempotask_django.models import VIEW, Dashboard
from tempotask_django.views import actions, cron_forms, crons, enqueue, jobs, overview, workers
from tempotask_django.views.base import has_permission


@admin.register(Dashboard)
class DashboardAdmin(admin.ModelAdmin):
    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return has_permission(request.user, VIEW)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        def view(view_class: Any) -> Any:
            return self.admin_site.admin_view(view_class.as_view(model_admin=self))

        queue = "queues/<str:queue>/"
        status = f"(?P<status>{'|'.join(JobStatus)})"
        return [
            # The admin index links a model to its changelist: that is the overview.
            path("", view(overview.OverviewView), name="tempotask_django_dashboard_changelist"),
            path("", view(overview.OverviewView), name="tempotask_overview"),
            path("overview.json", view(overview.OverviewDataView), name="tempotask_overview_data"),
            path("workers/", view(workers.WorkersView), name="tempotask_workers"),
            path("enqueue/", view(enqueue.EnqueueView), name="tempotask_enqueue"),
            path("jobs/", view(jobs.JobsHomeView), name="tempotask_jobs"),
            path("crons/", view(crons.CronsView), name="tempotask_crons"),
            path("crons/add/", view(cron_forms.CronFormView), name="tempotask_cron_add"),
            # Schedule names may hold "/" (a task name can): <path:> takes them whole.
            path("crons/<path:name>/run/", view(crons.RunCronView), name="tempotask_cron_run"),
            path("crons/<path:name>/pause/", view(crons.PauseCronView), name="tempotask_cron_pause"),
            path("crons/<path:name>/resume/", view(crons.ResumeCronView), name="tempotask_cron_resume"),
            path("crons/<path:name>/change/", view(cron_forms.CronFormView), name="tempotask_cron_change"),
            path("crons/<path:name>/delete/", view(cron_forms.DeleteCronView), name="tempotask_cron_delete"),
            re_path(rf"^queues/(?P<queue>[^/]+)/{status}/$", view(jobs.JobListView), name="tempotask_job_list"),
            path(f"{queue}jobs/<str:job_id>/", view(jobs.JobDetailView), name="tempotask_job"),
            path(f"{queue}jobs/<str:job_id>/live.json", view(jobs.JobLiveView), name="tempotask_job_live"),
            path(f"{queue}jobs/<str:job_id>/retry/", view(actions.RetryJobView), name="tempotask_job_retry"),
            path(f"{queue}jobs/<str:job_id>/delete/", view(actions.DeleteJobView), name="tempotask_job_delete"),
            path(f"{queue}jobs/<str:job_id>/cancel/", view(actions.CancelJobView), name="tempotask_job_cancel"),
            path(f"{queue}cancel/", view(actions.CancelJobsView), name="tempotask_jobs_cancel"),
            path(f"{queue}retry-failed/", view(actions.RetryFailedView), name="tempotask_queue_retry_failed"),
            path(f"{queue}pause/", view(actions.PauseQueueView), name="tempotask_queue_pause"),
            path(f"{queue}resume/", view(actions.ResumeQueueView), name="tempotask_queue_resume"),
            re_path(
                rf"^queues/(?P<queue>[^/]+)/purge/{status}/$",
                view(actions.PurgeQueueView),
                name="tempotask_queue_purge",
            ),
            # The admin's log ("Recent actions") links each action's object here.
            path("<str:object_id>/change/", view(jobs.LoggedObjectView), name="tempotask_django_dashboard_change"),
        ]
