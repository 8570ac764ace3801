"""Actions on jobs and queues: POST only, each behind its own permission, each written to the admin log.

Destructive ones (delete, purge, retry everything failed) show a confirmation page on GET.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.admin.models import CHANGE, DELETION
from django.http import Http404, HttpRequest, HttpResponse

from tempotask_django import api
from tempotask_django.job import JobStatus
from tempotask_django.models import VIEW
from tempotask_django.views.base import DashboardAction, admin_url


class RetryJobView(DashboardAction):
    permissions = (VIEW, "retry_job")

    def post(self, request: HttpRequest, queue: str, job_id: str) -> HttpResponse:
        queue = self.known_queue(queue)
        previous = self.store.retry_job(queue, job_id)
        back = admin_url("tempotask_job", queue, job_id)
        if previous is None:
            self.report(messages.ERROR, f"There is no job {job_id} in {queue}.")
            return self.redirect_back(admin_url("tempotask_job_list", queue, "failed"))
        if previous not in ("failed", "cancelled", "delayed"):
            message = f"Job {job_id} is {previous}: only failed, cancelled or delayed jobs can be retried."
            self.report(messages.WARNING, message)
            return self.redirect_back(back)
        self.record(CHANGE, f"{queue}/{job_id}", f"job {job_id} on {queue}", f"Retried (was {previous}).")
        self.report(messages.SUCCESS, f"Job {job_id} is queued again (it was {previous}).")
        return self.redirect_back(back)


class CancelJobView(DashboardAction):
    """Cancel one job: a waiting or delayed one never runs; a running one's worker stops it."""

    permissions = (VIEW, "cancel_job")

    def post(self, request: HttpRequest, queue: str, job_id: str) -> HttpResponse:
        queue = self.known_queue(queue)
        back = admin_url("tempotask_job", queue, job_id)
        result = api.cancel_in_queue(queue, job_id)
        if result is None:
            self.report(messages.ERROR, f"There is no job {job_id} in {queue}.")
            return self.redirect_back(admin_url("tempotask_job_list", queue, "waiting"))
        if not (result.ended or result.requested):
            self.report(messages.WARNING, f"Job {job_id} is {result.previous}: only active jobs can be cancelled.")
            return self.redirect_back(back)
        self.record(CHANGE, f"{queue}/{job_id}", f"job {job_id} on {queue}", f"Cancelled (was {result.previous}).")
        if result.requested:
            self.report(messages.SUCCESS, f"Job {job_id} is running: its worker was asked to stop it.")
        else:
            self.report(messages.SUCCESS, f"Job {job_id} ({result.previous}) was cancelled: it will not run.")
        return self.redirect_back(back)


class CancelJobsView(DashboardAction):
    """The job list's bulk action: cancel the jobs ticked (``ids``, one page at most)."""

    permissions = (VIEW, "cancel_job")
    # Most jobs one request cancels (a page of the list): one script call each.
    LIMIT = 50

    def post(self, request: HttpRequest, queue: str) -> HttpResponse:
        queue = self.known_queue(queue)
        ids = list(dict.fromkeys(request.POST.getlist("ids")))[: self.LIMIT]
        back = admin_url("tempotask_job_list", queue, "waiting")
        if not ids:
            self.report(messages.WARNING, "No job was selected.")
            return self.redirect_back(back)
        ended, requested, skipped = 0, 0, 0
        for job_id in ids:
            result = api.cancel_in_queue(queue, job_id)
            if result is None or not (result.ended or result.requested):
                skipped += 1
                continue
            ended += result.ended
            requested += result.requested
            self.record(CHANGE, f"{queue}/{job_id}", f"job {job_id} on {queue}", f"Cancelled (was {result.previous}).")
        text = f"{ended} job(s) cancelled, {requested} running job(s) asked to stop"
        self.report(messages.SUCCESS, text + (f"; {skipped} had finished or were gone." if skipped else "."))
        return self.redirect_back(back)


class DeleteJobView(DashboardAction):
    permissions = (VIEW, "delete_job")
    confirm_template = "admin/tempotask_django/confirm_delete_job.html"
    title = "Delete a job"

    def confirm_context(self, **kwargs: Any) -> dict[str, Any]:
        queue = self.known_queue(kwargs["queue"])
        job = self.store.inspect.get_job(queue, kwargs["job_id"])
        if job is None:
            raise Http404("no such job")
        return {"queue": queue, "job": job, "title": f"Delete job {job.id}?"}

    def post(self, request: HttpRequest, queue: str, job_id: str) -> HttpResponse:
        queue = self.known_queue(queue)
        previous = self.store.delete_job(queue, job_id)
        if previous is None:
            self.report(messages.ERROR, f"There is no job {job_id} in {queue}.")
            return self.redirect_back(admin_url("tempotask_job_list", queue, "waiting"))
        self.record(DELETION, f"{queue}/{job_id}", f"job {job_id} on {queue}", f"Deleted (was {previous}).")
        self.report(messages.SUCCESS, f"Job {job_id} ({previous}) was deleted.")
        return self.redirect_back(admin_url("tempotask_job_list", queue, previous))


class RetryFailedView(DashboardAction):
    permissions = (VIEW, "retry_job")
    confirm_template = "admin/tempotask_django/confirm_queue_action.html"

    def confirm_context(self, **kwargs: Any) -> dict[str, Any]:
        queue = self.known_queue(kwargs["queue"])
        count = self.store.inspect.count_jobs(queue, "failed")
        return {
            "queue": queue,
            "title": f"Retry every failed job of {queue}?",
            "count": count,
            "question": f"Queue the {count} failed job(s) of {queue} again, each with a fresh set of attempts?",
            "button": "Yes, retry them",
            "destructive": False,
            "back_status": "failed",
        }

    def post(self, request: HttpRequest, queue: str) -> HttpResponse:
        queue = self.known_queue(queue)
        count = self.store.retry_failed(queue)
        self.record(CHANGE, queue, f"queue {queue}", f"Retried {count} failed job(s).")
        self.report(messages.SUCCESS, f"{count} failed job(s) of {queue} are queued again.")
        return self.redirect_back(admin_url("tempotask_job_list", queue, "waiting"))


class PurgeQueueView(DashboardAction):
    permissions = (VIEW, "purge_queue")
    confirm_template = "admin/tempotask_django/confirm_queue_action.html"

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        status = JobStatus.parse(kwargs.get("status"))
        if status is None or not status.is_history:
            raise Http404("only completed, failed or cancelled jobs can be purged")
        return super().dispatch(request, *args, **kwargs)

    def confirm_context(self, **kwargs: Any) -> dict[str, Any]:
        queue, status = self.known_queue(kwargs["queue"]), kwargs["status"]
        count = self.store.inspect.count_jobs(queue, status)
        return {
            "queue": queue,
            "status": status,
            "title": f"Purge {status} jobs of {queue}?",
            "count": count,
            "question": f"Delete the {count} {status} job(s) of {queue} with their logs and errors? "
            "This cannot be undone.",
            "button": "Yes, delete them",
            "destructive": True,
            "back_status": status,
        }

    def post(self, request: HttpRequest, queue: str, status: str) -> HttpResponse:
        queue = self.known_queue(queue)
        count = self.store.purge(queue, status)
        self.record(DELETION, queue, f"queue {queue}", f"Purged {count} {status} job(s).")
        self.report(messages.SUCCESS, f"{count} {status} job(s) of {queue} were deleted.")
        return self.redirect_back(admin_url("tempotask_job_list", queue, status))


class PauseQueueView(DashboardAction):
    """Workers stop taking jobs from the queue; running ones finish."""

    permissions = (VIEW, "pause_queue")

    def post(self, request: HttpRequest, queue: str) -> HttpResponse:
        queue = self.known_queue(queue)
        self.store.pause_queue(queue)
        self.record(CHANGE, queue, f"queue {queue}", "Paused.")
        self.report(messages.SUCCESS, f"{queue} is paused: workers take no new jobs from it; running ones finish.")
        return self.redirect_back(admin_url("tempotask_overview"))


class ResumeQueueView(DashboardAction):
    permissions = (VIEW, "pause_queue")

    def post(self, request: HttpRequest, queue: str) -> HttpResponse:
        queue = self.known_queue(queue)
        self.store.resume_queue(queue)
        self.record(CHANGE, queue, f"queue {queue}", "Resumed.")
        self.report(messages.SUCCESS, f"{queue} is resumed.")
        return self.redirect_back(admin_url("tempotask_overview"))
